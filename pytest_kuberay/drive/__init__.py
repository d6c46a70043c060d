"""Drive workloads on a live cluster while observing them: deploy a RayService, run an upgrade and record it.

Sits between observe (which it uses to record) and verdict (which judges what it recorded).
"""
