"""Where articles come from: files (files.py), and the web behind its address guard
(guard.py), a bounded download (http.py), HTML extraction (html.py) and feeds (feeds.py).
`read.read_source` reads any of them.
"""
