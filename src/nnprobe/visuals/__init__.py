"""Pictures of what a network learned: embedding previews (PCA, UMAP, t-SNE), filter grids,
activation maps, top-activating inputs with their receptive fields, occlusion maps, and the offline
HTML report that gathers them.

Everything that needs numpy, torch, onnxruntime, scikit-learn, umap-learn or matplotlib imports it
inside functions: the server imports `nnprobe.visuals.params` (pure) to build a job, and the worker
runs the job (`nnprobe.visuals.jobs.run_picture`).
"""
