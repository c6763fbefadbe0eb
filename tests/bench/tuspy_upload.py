"""tuspy 1.1 the way its README shows it: TusClient(url).uploader(path, metadata).upload(),
default chunk size, one file after another. (Without metadata tuspy sends an empty
Upload-Metadata header, which @tus/server answers with 400.)
    python tuspy_upload.py <endpoint> <file>...
"""
import os
import sys

from tusclient import client

endpoint, files = sys.argv[1], sys.argv[2:]
c = client.TusClient(endpoint)
for f in files:
    c.uploader(f, metadata={"filename": os.path.basename(f)}).upload()
