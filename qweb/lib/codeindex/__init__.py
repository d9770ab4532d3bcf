"""Django-free code index: languages, symbols, tokens, BM25 search, repository map, Django links.

Everything here works on bytes already in memory (blobs read from a bare git store), never
on a checked-out tree, and never imports the code it analyses.
"""
