"""Plain values and pure checks: no I/O, no store; what servers/ may import besides the facade.

records.py         the domain records (sources, frames, categories, objects, tracks, pages)
dataset_records.py the records of datasets (definition, splits, membership)
resource_names.py  `sources/{uuid}` and the other names: formatting and strict parsing
input_checks.py    checks of the values a request wants written, naming the request field
"""
