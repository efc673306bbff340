"""The training loop: train a YOLO student on a built dataset, record the runs, export it.

- `yolo_process`: the training subprocess (`python -m agentic_labeling.training.yolo_process`),
  the only module that imports ultralytics (AGPL-3.0, the `[train]` extra; it also replaces
  `PIL.Image.open` on import): train, predict and export-onnx, JSON lines on stdout.
- `yolo_jobs`: the parent side, asyncio: `train_yolo`, `predict_yolo`, `export_onnx`,
  `check_model_spec`, `training_available`; progress per epoch, cancellation at epoch boundaries.
- `mlflow_runs`: `MlflowRecorder`, params, per-epoch metrics and artifacts of training and
  evaluation runs in an MLflow store (SQLite under the data directory by default).
- `evaluation`: `evaluate_boxes`, pure COCO-protocol scoring (pycocotools' COCOeval): mAP@0.5,
  mAP@0.5:0.95, per-class AP, precision and recall at best F1, a confusion matrix.
- `review_ranking`: `rank_for_review`, pure: which unvalidated objects (or images) to review
  next, by uncertainty, diversity (k-centre greedy over embeddings) and disagreement.

Nothing here is imported by a server at start-up: each module imports its heavy dependency
(ultralytics, mlflow) only when it is used.
"""
