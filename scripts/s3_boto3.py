#!/usr/bin/env python3
"""A second, independent S3 client (boto3) for covfleet's store tests and
bench/download.sh.

  s3_boto3.py upload   SRC_DIR  s3://BUCKET/PREFIX [--concurrency N]  # keys = PREFIX/<path under SRC_DIR>
  s3_boto3.py download s3://BUCKET/PREFIX DEST_DIR [--concurrency N]
  s3_boto3.py list     s3://BUCKET/PREFIX          # prints "<key>\t<size>"

Endpoint and credentials come from the environment: AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION. Path-style requests.
Prints one JSON line with objects, bytes and seconds for upload/download.
"""
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config


def client(concurrency=10):
    return boto3.client(
        "s3",
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL"),
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=max(concurrency, 10),
                      retries={"max_attempts": 3}),
    )


def split(url):
    assert url.startswith("s3://"), url
    bucket, _, prefix = url[5:].partition("/")
    return bucket, prefix.strip("/")


def list_keys(s3, bucket, prefix):
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/" if prefix else ""):
        for o in page.get("Contents", []):
            out.append((o["Key"], o["Size"]))
    return out


def main(argv):
    cmd = argv[1]
    t0 = time.monotonic()
    if cmd == "upload":
        src, (bucket, prefix) = argv[2], split(argv[3])
        conc = int(argv[argv.index("--concurrency") + 1]) if "--concurrency" in argv else 1
        s3 = client(conc)
        paths = []
        for root, _, files in sorted(os.walk(src)):
            paths.extend(os.path.join(root, f) for f in sorted(files))

        def put(p):
            key = "/".join(x for x in [prefix, os.path.relpath(p, src)] if x)
            with open(p, "rb") as fh:
                data = fh.read()
            s3.put_object(Bucket=bucket, Key=key, Body=data)
            return len(data)

        # In order with --concurrency 1 (tests rely on upload order).
        with ThreadPoolExecutor(max_workers=conc) as pool:
            b = sum(pool.map(put, paths))
        print(json.dumps({"objects": len(paths), "bytes": b, "seconds": time.monotonic() - t0}))
    elif cmd == "download":
        (bucket, prefix), dest = split(argv[2]), argv[3]
        conc = int(argv[argv.index("--concurrency") + 1]) if "--concurrency" in argv else 10
        s3 = client(conc)
        keys = list_keys(s3, bucket, prefix)

        def get(item):
            key, _ = item
            rel = key[len(prefix) + 1:] if prefix else key
            path = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            with open(path, "wb") as fh:
                fh.write(data)
            return len(data)

        with ThreadPoolExecutor(max_workers=conc) as pool:
            total = sum(pool.map(get, keys))
        print(json.dumps({"objects": len(keys), "bytes": total, "seconds": time.monotonic() - t0}))
    elif cmd == "list":
        bucket, prefix = split(argv[2])
        for k, size in list_keys(client(), bucket, prefix):
            print(f"{k}\t{size}")
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
