"""The conformance suites. Fixtures come from the pytest-kuberay plugin (installed as a pytest11 entry point)."""
