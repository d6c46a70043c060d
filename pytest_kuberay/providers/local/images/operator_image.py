"""The KubeRay operator's image, built from the operator binary the toolchain built (a release or a checkout).

Like the upstream image (distroless, nonroot) it holds the static binary at ``/manager``
and runs as uid 65532: the release's Deployment sets ``runAsNonRoot``, which kubelet can
only verify for a numeric user.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

from pytest_kuberay.providers.local.images.cache import cached_build
from pytest_kuberay.providers.local.images.oci import ImageConfig, oci_archive

__all__ = ["OPERATOR_REPOSITORY", "ensure_operator_image", "operator_image_name"]

OPERATOR_REPOSITORY = "localhost/pytest-kuberay/kuberay-operator"
NONROOT = "65532:65532"


def operator_image_name(label: str) -> str:
    """``v1.5.0+pr4212`` -> ``localhost/pytest-kuberay/kuberay-operator:v1.5.0-pr4212`` (a tag has no ``+``)."""
    return f"{OPERATOR_REPOSITORY}:{re.sub(r'[^A-Za-z0-9_.-]', '-', label)[:128]}"


def ensure_operator_image(binary: Path, label: str) -> Path:
    """The OCI archive for ``binary``, keyed by its content: a rebuilt binary gets a new image."""
    digest = hashlib.sha256(binary.read_bytes()).hexdigest()[:12]
    name = operator_image_name(label)
    tag = name.rpartition(":")[2]
    with cached_build(f"image-kuberay-operator-{tag}-{digest}.oci.tar", f"the image {name}") as (final, work):
        if work is not None:
            root = work / "rootfs"
            (root / "tmp").mkdir(parents=True)
            (root / "tmp").chmod(0o1777)
            (root / "etc").mkdir()
            (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/sbin/nologin\n"
                                                 "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")
            (root / "etc" / "group").write_text("root:x:0:\nnonroot:x:65532:\n")
            shutil.copy2(binary, root / "manager")
            (root / "manager").chmod(0o755)
            oci_archive(root, tag, ImageConfig(entrypoint=("/manager",), user=NONROOT), work / "out", work)
    return final
