"""What produced an output: library versions recorded in manifests and results files."""

from __future__ import annotations

import importlib.metadata as metadata
import platform

# distribution name -> the key it is recorded under
_KEYS = {"opencv-python-headless": "opencv", "opencv-python": "opencv", "segmentation-models-pytorch": "smp"}


def library_versions(*packages: str) -> dict[str, str]:
    """``{"fusion_perception": ..., "python": ..., <package>: <version>}`` for the installed ``packages``."""
    import fusion_perception

    out = {"fusion_perception": fusion_perception.__version__, "python": platform.python_version()}
    for pkg in packages:
        try:
            out.setdefault(_KEYS.get(pkg, pkg), metadata.version(pkg))
        except metadata.PackageNotFoundError:
            continue
    return out
