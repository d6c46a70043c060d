"""``--kuberay-provider=existing``: the suites on a cluster a team already has (GKE, EKS, on-prem).

Someone else's cluster gets three promises, one module each: only what is missing is installed
(:mod:`.crds`, :mod:`.stack`); a conflict stops the run with a message instead of results that mean
nothing (:mod:`.refusals`, from what :mod:`.discovery` finds); nothing we did not create is deleted
(CRDs stay while objects of their kind exist). This package re-exports the names the fixtures and tests use.
"""

from pytest_kuberay.stacks.existing.discovery import (
    InstalledOperator,
    check_reachable,
    gateway_address_url,
    inspect_operator,
    parse_feature_gates,
    version_from_image,
)
from pytest_kuberay.stacks.existing.kubeconfig import kubeconfig_path, minified_kubeconfig
from pytest_kuberay.stacks.existing.refusals import operator_conflicts, rayservice_crd_problems, resolve_gateway_class
from pytest_kuberay.stacks.existing.stack import (
    EXISTING_OPERATOR_NAMESPACE,
    ExistingOperator,
    ExistingStack,
    existing_stack,
)

__all__ = [
    "EXISTING_OPERATOR_NAMESPACE",
    "ExistingOperator",
    "ExistingStack",
    "InstalledOperator",
    "check_reachable",
    "existing_stack",
    "gateway_address_url",
    "inspect_operator",
    "kubeconfig_path",
    "minified_kubeconfig",
    "operator_conflicts",
    "parse_feature_gates",
    "rayservice_crd_problems",
    "resolve_gateway_class",
    "version_from_image",
]
