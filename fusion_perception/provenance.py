"""What produced an output: library versions recorded in manifests and results files."""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import platform

# module -> (the key it is recorded under, its distribution for modules without __version__)
_NAMES = {"cv2": ("opencv", "opencv-python-headless"), "segmentation_models_pytorch": ("smp", None)}


def library_versions(*modules: str) -> dict[str, str]:
    """``{"fusion_perception": ..., "python": ..., <module>: <version>}`` for the importable ``modules``.

    The module's own ``__version__`` is preferred: torch's carries its build (``2.14.1+cu130``).
    """
    import fusion_perception

    out = {"fusion_perception": fusion_perception.__version__, "python": platform.python_version()}
    for name in modules:
        key, dist = _NAMES.get(name, (name, name))
        try:
            version = getattr(importlib.import_module(name), "__version__", None)
        except ImportError:
            continue
        if version is None and dist is not None:
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
        if version is not None:
            out[key] = str(version)
    return out
