"""Datasets and label sets: define, build, split and export datasets; read and write COCO and
YOLO.

datasets.py        the Postgres store: create, get, list, delete, build, read the membership
dataset_splits.py  groups of images to train / val / test: pure, deterministic, stratified
dataset_export.py  a built dataset written out image by image, as YOLO or COCO
export_target.py   where an export goes, and how it lands there whole or not at all
label_sets.py      the in-memory label set that exporters write and importers read
yolo_export.py     a label set in ultralytics' YOLO format (detection or segmentation)
coco_export.py     a label set as COCO instance annotations, with exact masks
mask_polygons.py   masks as polygons and back, for YOLO segmentation labels
label_import.py    COCO and YOLO label sets read into label images, bad input refused
ground_truth.py    an imported label set registered as validated objects
job_progress.py    what a slow job (export, import) needs: progress, and when to stop
evaluation_sets.py what a model is scored on: a split's validated objects, a model's outputs
"""
