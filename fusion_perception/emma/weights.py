"""Where EMMA's weights come from when the user names none.

- The toolkit's own checkpoint (:data:`DEFAULT_EMMA_WEIGHTS`), trained by ``tools/train_sensing.py``
  and ``tools/train_emma.py`` on the synthetic default's training split (the README's model card
  gives the command, seed, time and sha256). It is the default on synthetic data only: it has never
  seen a real camera.
- ``--weights official``: the authors' released ``EMMA.pth``, fetched once into the user's cache
  (:func:`emma_cache_dir`) and verified by its git blob SHA-1 (the id in the public repository's
  tree) before any use. This is the toolkit's only download, and it happens only when asked for.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from fusion_perception.files import atomic_write_bytes
from fusion_perception.errors import ConfigError

DEFAULT_EMMA_WEIGHTS = Path(__file__).resolve().parent / "pretrained" / "emma_synthetic.pth"
OFFICIAL = "official"
OFFICIAL_EMMA_URL = "https://github.com/Zhaozixiang1228/MMIF-EMMA/raw/main/model/EMMA.pth"
OFFICIAL_EMMA_BLOB_SHA1 = "46f382475767323b83f3f7f52dc2bed0ac6b7476"
OFFICIAL_EMMA_FILE = "EMMA.pth"
# A mirror (an internal artifact store) may replace the URL; the file is verified all the same.
URL_ENV = "FUSION_PERCEPTION_EMMA_URL"
CACHE_ENV = "FUSION_PERCEPTION_CACHE"

CHOICES_HELP = ("--weights PATH (an EMMA checkpoint: the authors' EMMA.pth or one trained with "
                "tools/train_emma.py) or --weights official (downloads the authors' EMMA.pth once)")


def emma_cache_dir() -> Path:
    """``$FUSION_PERCEPTION_CACHE``, else ``$XDG_CACHE_HOME/fusion_perception``, else ``~/.cache/fusion_perception``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fusion_perception"


def _blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def git_blob_sha1(path: str | Path) -> str:
    """The id git gives a file's content: ``sha1(b"blob <size>\\0" + content)``."""
    return _blob_sha1(Path(path).read_bytes())


def fetch_official_emma(
    *, cache_dir: str | Path | None = None, url: str | None = None, blob_sha1: str = OFFICIAL_EMMA_BLOB_SHA1,
    timeout: float = 60.0, progress: bool = True,
) -> Path:
    """The authors' ``EMMA.pth`` in the cache, downloaded on first use; always verified.

    A download whose git blob SHA-1 differs from ``blob_sha1`` is deleted and refused (nothing
    is cached). Without a network: one line naming the URL and where to put the file by hand.
    """
    target = Path(cache_dir).expanduser() if cache_dir is not None else emma_cache_dir()
    path = target / OFFICIAL_EMMA_FILE
    url = url or _mirror() or OFFICIAL_EMMA_URL
    if path.is_file():
        got = git_blob_sha1(path)
        if got != blob_sha1:
            raise ConfigError(f"{path}: git blob SHA-1 {got} is not the authors' EMMA.pth ({blob_sha1}); "
                              "delete it to download it again")
        return path
    data = _download(url, timeout, progress)  # ~6 MB: verified in memory, so nothing unverified touches the disk
    got = _blob_sha1(data)
    if got != blob_sha1:
        raise ConfigError(f"{url}: the downloaded file's git blob SHA-1 is {got}, not the authors' EMMA.pth "
                          f"({blob_sha1}); refused, nothing was cached")
    atomic_write_bytes(path, data)
    return path


def _mirror() -> str | None:
    """``$FUSION_PERCEPTION_EMMA_URL``, checked: a URL urllib can fetch, named by the variable if not."""
    url = os.environ.get(URL_ENV)
    if url and urllib.parse.urlparse(url).scheme.lower() not in ("http", "https", "ftp", "file"):
        raise ConfigError(f"{URL_ENV}={url!r} is not a URL to download EMMA.pth from (http://, https://, ftp:// "
                          f"or file://); unset it for the authors' {OFFICIAL_EMMA_URL}")
    return url


def _download(url: str, timeout: float, progress: bool) -> bytes:
    from tqdm import tqdm

    cache = emma_cache_dir() / OFFICIAL_EMMA_FILE
    named = f"; {CACHE_ENV} names that folder" if os.environ.get(CACHE_ENV) else ""
    hint = (f"download it by hand from {url} and put it at {cache} (it is checked against git blob SHA-1 "
            f"{OFFICIAL_EMMA_BLOB_SHA1}{named})")
    chunks = []
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - the user asked for it
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc="EMMA.pth", disable=not progress) as bar:
                for block in iter(lambda: resp.read(1 << 16), b""):
                    chunks.append(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as e:
        raise ConfigError(f"cannot download the authors' EMMA.pth: {url} answered HTTP {e.code}; {hint}") from None
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as e:  # ValueError: a URL urllib cannot parse
        reason = getattr(e, "reason", None) or e
        source = f"{URL_ENV}={url}" if url == os.environ.get(URL_ENV) else url
        raise ConfigError(f"cannot download the authors' EMMA.pth from {source} ({reason}); {hint}") from None
    return b"".join(chunks)


def resolve_emma_weights(weights: str | Path | None, data_root: str | Path | None = None) -> Path:
    """The checkpoint for ``weights``: a path, ``"official"``, or ``None`` (the toolkit's own
    checkpoint on synthetic data; anywhere else the user must choose, and is told how)."""
    if weights is None:
        from fusion_perception.synthetic.dataset import is_synthetic

        if data_root is None or is_synthetic(data_root):
            if not DEFAULT_EMMA_WEIGHTS.is_file():
                raise ConfigError(f"{DEFAULT_EMMA_WEIGHTS}: the toolkit's EMMA checkpoint is missing from this "
                                  f"install; pass {CHOICES_HELP}")
            return DEFAULT_EMMA_WEIGHTS
        raise ConfigError(f"emma needs weights for {data_root} (the toolkit's own checkpoint is trained on "
                          f"synthetic scenes only): pass {CHOICES_HELP}")
    if str(weights) == OFFICIAL:
        return fetch_official_emma()
    return Path(weights).expanduser()


__all__ = [
    "DEFAULT_EMMA_WEIGHTS", "OFFICIAL", "OFFICIAL_EMMA_BLOB_SHA1", "OFFICIAL_EMMA_URL", "emma_cache_dir",
    "fetch_official_emma", "git_blob_sha1", "resolve_emma_weights",
]
