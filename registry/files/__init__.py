"""The registry's files: masks and the images sent with sources, each written whole or not at
all.

atomic_files.py  write beside, fsync, rename over, fsync the directory
masks.py         one 1-bit PNG per object, under 100 KB
encoded_masks.py masks as requests carry them (PNG or RLE), decoded at the image's size
image_store.py   the encoded bytes of every image and frame, for exports long after
"""
