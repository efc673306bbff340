"""The Postgres stores of the registry's metadata, one module per resource.

sources.py         sources (images, videos) and their frames
source_images.py   a source or a frame registered together with its encoded image
source_image_reads.py  GetSourceImage: the stored bytes of a source or frame, size-checked
categories.py      categories with synonyms; resolving a name or synonym
objects.py         objects: get, list, update, validate, delete, stats
object_batches.py  BatchCreateObjects: all or nothing, exactly once
object_rows.py     how an object row is selected and read, for every module returning objects
model_outputs.py   what a detection model said, kept apart from reviews and deletions
tracks.py          tracks: objects of one source followed across frames; merge and split
outbox.py          what Qdrant must still be told, written with the rows that need it
review_candidates.py  what SuggestForReview ranks: unvalidated objects, embeddings, images
"""
