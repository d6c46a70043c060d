"""What a session gets: a cluster from a provider with Gateway API, a gateway controller and KubeRay installed on it.

Each stack joins one provider to the installers; stacks are independent of each other.
"""
