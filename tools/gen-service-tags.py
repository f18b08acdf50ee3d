#!/usr/bin/env python3
"""Generates sim/src/tags/service_tags.bin, the built-in service tag table, from a dated
`ServiceTags_Public_YYYYMMDD.json` file (Microsoft's weekly "Azure IP Ranges and Service Tags -
Public Cloud" download). Standard library only.

Usage (from the repository root):

    tools/gen-service-tags.py ../shared/corpus/ryanborMSFT_AzureServiceTagsJson/Public/ServiceTags_Public_20251028.json

writes sim/src/tags/service_tags.bin (or the path given as a second argument). The blob holds the
WHOLE file: every tag, every region, each tag's changeNumber, the file's changeNumber and cloud,
and the date taken from the file name. The build and the tests never need the JSON file; the
decoder is `sim/src/tags/blob.rs`, which documents the same format.

Format, version 1 (every integer is an unsigned LEB128 varint unless said otherwise; a string is
a varint byte length followed by that many UTF-8 bytes):

    magic          4 bytes  b"VNST"
    version        1 byte   1
    change_number  varint   the file's changeNumber
    cloud          string   "Public"
    date           string   "2025-10-28" (from the file name)
    file           string   "ServiceTags_Public_20251028.json"
    strings        varint n, then n strings: every distinct name part and region, sorted
    tags           varint n, then n tags, in file order:
        base           varint  string index of the name before the first '.' ("Storage")
        suffix         varint  0 = none, else 1 + string index of the part after it ("EastAsia")
        region         varint  string index of the region ("eastasia"; "" for global tags)
        change_number  varint  the tag's own changeNumber
        prefixes       varint n, then n prefixes, in file order:
            length byte  L: 0..=32 is IPv4 /L, 64..=192 is IPv6 /(L-64); anything else is invalid
            address      ceil(len/8) bytes, the network address's leading bytes (the rest are
                         zero); bits past the prefix length in the last byte must be zero
    checksum       8 bytes  FNV-1a 64 (little-endian) of every byte before it

Names are deduplicated through the string table: `Storage.EastAsia` is ("Storage", "EastAsia"),
so each base, region suffix and region is stored once.
"""
import ipaddress
import json
import os
import re
import sys

MAGIC = b"VNST"
VERSION = 1


def varint(n):
    assert n >= 0
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def string(s):
    b = s.encode("utf-8")
    return varint(len(b)) + b


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def prefix(text):
    # strict=True: a prefix with host bits set is an error, as in the Rust `Cidr`.
    net = ipaddress.ip_network(text, strict=True)
    length = net.prefixlen
    code = length if net.version == 4 else 64 + length
    return bytes([code]) + net.network_address.packed[: (length + 7) // 8]


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    src = sys.argv[1]
    dst = sys.argv[2] if len(sys.argv) == 3 else "sim/src/tags/service_tags.bin"
    fname = os.path.basename(src)
    m = re.fullmatch(r"ServiceTags_(\w+)_(\d{4})(\d{2})(\d{2})\.json", fname)
    if not m:
        sys.exit(f"{fname}: expected a dated ServiceTags_<Cloud>_YYYYMMDD.json file name")
    date = f"{m.group(2)}-{m.group(3)}-{m.group(4)}"
    with open(src, encoding="utf-8") as f:
        data = json.load(f)

    tags = []
    seen = set()
    for v in data["values"]:
        name = v["name"]
        if name.lower() in seen:
            sys.exit(f"duplicate tag name {name}")
        seen.add(name.lower())
        base, _, suffix = name.partition(".")
        props = v["properties"]
        tags.append((base, suffix, props.get("region") or "", props["changeNumber"], props["addressPrefixes"]))

    strings = sorted({s for t in tags for s in (t[0], t[1], t[2])})
    index = {s: i for i, s in enumerate(strings)}

    body = bytearray(MAGIC)
    body.append(VERSION)
    body += varint(data["changeNumber"])
    body += string(data["cloud"])
    body += string(date)
    body += string(fname)
    body += varint(len(strings))
    for s in strings:
        body += string(s)
    body += varint(len(tags))
    n_prefixes = 0
    for base, suffix, region, change, prefixes in tags:
        body += varint(index[base])
        body += varint(index[suffix] + 1 if suffix else 0)
        body += varint(index[region])
        body += varint(change)
        body += varint(len(prefixes))
        for p in prefixes:
            body += prefix(p)
        n_prefixes += len(prefixes)
    body += fnv1a64(body).to_bytes(8, "little")

    with open(dst, "wb") as f:
        f.write(body)
    print(
        f"{dst}: {len(body)} bytes; {fname} (changeNumber {data['changeNumber']}, cloud {data['cloud']}, "
        f"{date}): {len(tags)} tags, {n_prefixes} prefixes, {len(strings)} distinct strings"
    )


if __name__ == "__main__":
    main()
