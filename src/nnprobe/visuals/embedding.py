"""2-D projections of a hidden layer and how far to believe them.

PCA answers at once; UMAP shows clusters best but its first call in a process spends 20-60 s
compiling numba code, so a long-lived worker warms it in a background thread (`warm_umap`) and
answers with PCA until it is ready; t-SNE (scikit-learn) is there for comparison with the seed's
pictures. Every projection comes with two numbers: trustworthiness (are 2-D neighbours real
neighbours; scikit-learn) and the accuracy of a 5-nearest-neighbour classifier in the 2-D plane
(5-fold cross-validated): a clean-looking picture with a low kNN accuracy is lying.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

METHODS = ("auto", "pca", "umap", "tsne")
TRUST_SAMPLE = 2000  # trustworthiness is quadratic in the points; measured on a seeded subsample
TRUST_NEIGHBOURS = 10
# Tuned in bench/visual_bench.py (umap-learn's default below 10k points is 500): started from the
# PCA picture, 100 epochs at 2.5k points and more keep the trustworthiness of 200 (5k points:
# 0.9554 vs 0.9553 for PCA on blobs, 0.991 vs 0.818 on 512-d digits features); smaller sets are
# cheap, so they keep 200.
UMAP_EPOCHS = 200
UMAP_EPOCHS_LARGE = 100
LARGE_FROM = 2500
# UMAP's neighbour search and layout run on at most this many PCA components: the umap-learn docs
# recommend reducing high-dimensional data first, and on 512-d points it cuts the search 3-10x.
UMAP_DIMS = 50
EXACT_NEIGHBOURS = 4096  # umap-learn's switch from exact neighbours to pynndescent
WARM_POINTS = EXACT_NEIGHBOURS + 200

_warm_state = {"state": "cold", "seconds": 0.0, "error": ""}
_warm_lock = threading.Lock()


def umap_state() -> str:
    """ "cold", "warming", "ready" or "failed"."""
    return _warm_state["state"]  # type: ignore[return-value]


def warm_umap(background: bool = True, points: int = WARM_POINTS) -> str:
    """Compile UMAP's numba code once in this process (a small fit); in a daemon thread unless
    `background` is False. Returns the state after starting. umap-learn finds neighbours exactly
    below 4096 points and with pynndescent above, and each path compiles on first use: the
    default size compiles both (bench/visual_bench.py: a 5k-point call after a 300-point warm-up
    still spent 60-90 s compiling)."""
    with _warm_lock:
        if _warm_state["state"] in ("warming", "ready"):
            return umap_state()
        _warm_state["state"] = "warming"

    def work() -> None:
        import numpy as np

        start = time.perf_counter()
        try:
            x = np.random.default_rng(0).standard_normal((points, 8)).astype(np.float32)
            project(x, "umap")
            if points > EXACT_NEIGHBOURS:
                project(x[:300], "umap")
        except Exception as exc:  # the next real call reports it properly
            _warm_state.update(state="failed", error=f"{type(exc).__name__}: {exc}")
            return
        _warm_state.update(state="ready", seconds=time.perf_counter() - start)

    if background:
        threading.Thread(target=work, name="nnprobe-umap-warm", daemon=True).start()
    else:
        work()
    return umap_state()


def project(x: np.ndarray, method: str, seed: int = 0) -> np.ndarray:
    """(n, 2) points. `method` is pca, umap or tsne."""
    import numpy as np

    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    if method == "pca":
        # numpy only, so a cold worker answers without importing scikit-learn first.
        if x.shape[1] < 2:
            centred = x.astype(np.float64) - x.mean(axis=0)
            return np.column_stack([centred[:, 0], np.zeros(len(x))])
        return principal_components(x, 2)
    if method == "umap":
        return _umap(x, seed)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
        tsne = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed)
        return np.asarray(tsne.fit_transform(x))
    raise ValueError(f"unknown projection {method!r} (one of {', '.join(METHODS[1:])})")


def principal_components(x: np.ndarray, k: int, dtype: str = "float64") -> np.ndarray:
    """`x` centred and projected on its top `k` principal axes (eigenvectors of the covariance,
    each oriented so its largest entry is positive: the same data gives the same picture)."""
    import numpy as np

    centred = x.astype(dtype) - x.mean(axis=0, dtype=dtype)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    top = vectors[:, ::-1][:, :k]
    top *= np.sign(top[np.abs(top).argmax(axis=0), np.arange(top.shape[1])])
    return np.asarray(centred @ top)


def umap_epochs(points: int) -> int:
    return UMAP_EPOCHS_LARGE if points >= LARGE_FROM else UMAP_EPOCHS


def _umap(x: np.ndarray, seed: int) -> np.ndarray:
    """UMAP on the top UMAP_DIMS principal components, started from the PCA picture (the first
    two of them) instead of a spectral embedding, single-threaded with a seed.

    One thread because numba's parallel neighbour search and layout were 2-7x slower than one
    thread on a 2-core machine shared with other work (each epoch waits for its slowest thread),
    and a seed makes the same layer give the same picture. BLAS is held to one thread for the
    PCA for the same reason (its spinning threads made a 60 ms product take 0.5-8 s)."""
    import numpy as np

    try:
        import umap
        from threadpoolctl import threadpool_limits
    except ImportError as exc:
        raise ImportError("UMAP needs umap-learn: pip install 'nnprobe[viz]'") from exc
    with threadpool_limits(1, "blas"):
        data = principal_components(x, min(UMAP_DIMS, x.shape[1]), "float32")
    init: Any = "random"
    if len(x) > 16 and x.shape[1] >= 2 and np.unique(data[:, :2], axis=0).shape[0] > 2:
        init = data[:, :2].astype(np.float64)
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(15, len(x) - 1),
        n_epochs=umap_epochs(len(x)),
        low_memory=True,
        init=init,
        random_state=seed,
        n_jobs=1,
    )
    return np.asarray(reducer.fit_transform(np.ascontiguousarray(data, dtype=np.float32)))


def quality(x: np.ndarray, points: np.ndarray, labels: np.ndarray | None) -> dict[str, float]:
    """{"trustworthiness": ..., "knn2d": ...}; knn2d only with labels of >= 2 classes."""
    import numpy as np
    from sklearn.manifold import trustworthiness

    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    out: dict[str, float] = {}
    idx = np.arange(len(x))
    if len(idx) > TRUST_SAMPLE:
        idx = np.sort(np.random.default_rng(0).choice(len(x), TRUST_SAMPLE, replace=False))
    k = min(TRUST_NEIGHBOURS, max(1, len(idx) // 2 - 1))
    if len(idx) > 3:
        out["trustworthiness"] = float(trustworthiness(x[idx], points[idx], n_neighbors=k))
    if labels is not None:
        knn = knn_accuracy(points, labels)
        if knn is not None:
            out["knn2d"] = knn
    return out


def knn_accuracy(points: np.ndarray, labels: np.ndarray, folds: int = 5) -> float | None:
    """Mean 5-fold accuracy of a 5-nearest-neighbour classifier on the 2-D points."""
    import numpy as np
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    labels = np.asarray(labels)
    _, counts = np.unique(labels, return_counts=True)
    if len(counts) < 2 or counts.min() < 2:
        return None
    splits = min(folds, int(counts.min()))
    cv = StratifiedKFold(n_splits=splits, shuffle=True, random_state=0)
    scores = cross_val_score(KNeighborsClassifier(n_neighbors=5), points, labels, cv=cv)
    return float(np.mean(scores))


def embed(
    features: np.ndarray, labels: np.ndarray | None, method: str = "auto"
) -> tuple[np.ndarray, dict[str, Any]]:
    """Points and meta for a preview. "auto": UMAP when this process has warmed it, else PCA with
    `meta["pending"] = "umap"` and the warm-up started."""
    chosen = method
    meta: dict[str, Any] = {}
    if method == "auto":
        state = umap_state()
        chosen = "umap" if state == "ready" else "pca"
        if state != "ready":
            meta["pending"] = "umap" if warm_umap() != "failed" else None
            meta["umap"] = umap_state()
    start = time.perf_counter()
    points = project(features, chosen)
    meta["seconds"] = round(time.perf_counter() - start, 3)
    meta["method"] = chosen
    meta.update({k: round(v, 4) for k, v in quality(features, points, labels).items()})
    return points, meta


def warm_job(params: dict[str, Any]) -> dict[str, Any]:
    """The worker's `warm` method: start compiling UMAP in the background; answers at once."""
    if params.get("umap", True):
        warm_umap()
    return {"umap": umap_state()}
