"""tuspy 1.1 the way its README shows it: TusClient(url).uploader(path).upload(), default
chunk size, one file after another.
    python tuspy_upload.py <endpoint> <file>...
"""
import sys

from tusclient import client

endpoint, files = sys.argv[1], sys.argv[2:]
c = client.TusClient(endpoint)
for f in files:
    c.uploader(f).upload()
