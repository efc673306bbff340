"""The three models of the mesh, callable in-process with the same code Triton serves.

Each module loads its model through transformers' native class (no trust_remote_code) from a
local directory or a hub id, and works on whole batches:

- `florence2.Florence2Detector.detect(images, class_names, settings)`: text-prompted boxes
  with a real confidence per box, derived from the generation's token probabilities.
- `sam2.Sam2Segmenter.segment(images, boxes)`: one mask per box at the image's resolution
  and SAM2's predicted IoU; each image is encoded once.
- `dinov2.Dinov2Embedder.embed(images, boxes, masks)`: one L2-normalised embedding per crop.

Images are RGB uint8 arrays of shape (height, width, 3); boxes are float arrays of shape
(n, 4) holding x, y, width, height in pixels of that image. The Triton models in
model_repository/ call exactly these functions, which is what makes the parity tests
meaningful. `tiny.make_tiny_models` builds random-weight models with the real architectures
for tests and the demo: they prove the plumbing, never label quality.
"""
