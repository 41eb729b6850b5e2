#!/usr/bin/env python3
"""Writes tests/testdata/werkzeug_vectors.json: password hashes made by the
werkzeug versions that Airflow 2.x (Werkzeug 2.2, pbkdf2:sha256) and 3.x
(Werkzeug 3.1, scrypt) install, so windsock's verifier is checked against
the real thing.

Usage: run it once with each Airflow venv's python (see make-fixtures.sh),
e.g.  /tmp/windsock-airflow/venv-2.10.5/bin/python tests/airflow/make-password-vectors.py
      /tmp/windsock-airflow/venv-3.1.8/bin/python  tests/airflow/make-password-vectors.py
Each run merges its vectors into the file.
"""
import json
import os
from importlib.metadata import version

from werkzeug.security import check_password_hash, generate_password_hash

PASSWORDS = ["admin", "s3cret/pw", "pässwörd-✓", "", "a" * 100, "domain/user:with:colons$and$dollars"]
METHODS = ["pbkdf2:sha256", "pbkdf2:sha256:1000", "pbkdf2:sha512:2000", "scrypt", "scrypt:16384:8:1"]

path = os.path.join(os.path.dirname(__file__), "..", "testdata", "werkzeug_vectors.json")
try:
    with open(path) as f:
        vectors = json.load(f)
except FileNotFoundError:
    vectors = []
wz = version("werkzeug")
for method in METHODS:
    # The default methods are deliberately slow (up to 1M rounds): one
    # vector each is enough; the cheap variants cover the edge cases.
    cheap = method.count(":") >= 2 or method.startswith("scrypt:")
    for pw in PASSWORDS if cheap else PASSWORDS[1:2]:
        try:
            h = generate_password_hash(pw, method=method)
        except (ValueError, TypeError):
            continue  # method unknown to this werkzeug
        assert check_password_hash(h, pw)
        assert not check_password_hash(h, pw + "x")
        vectors.append({"werkzeug": wz, "method": method, "password": pw, "hash": h})
with open(path, "w") as f:
    json.dump(vectors, f, indent=1, ensure_ascii=False)
    f.write("\n")
print(f"{len(vectors)} vectors in {path}")
