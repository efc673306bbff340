"""What a List or a search asks for, checked and turned into SQL: filters, order, pages.

filtering.py        the one AIP-160 filter parser (List, SearchSimilar, datasets)
listing.py          page_size (AIP-158) and order_by (AIP-132) checks shared by every List
queryable_fields.py what each resource can be filtered and ordered by
sql_filters.py      a parsed filter as a psycopg WHERE clause, per resource
page_tokens.py      opaque page tokens bound to the query that issued them
keyset.py           keyset paging: the plan of a page, the one List SELECT, a whole List
"""
