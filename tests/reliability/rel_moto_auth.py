"""moto's S3 server for the permission tests: ``python rel_moto_auth.py`` prints ``PORT <n>``.

Same server as ``modelshelf_s3.testing.moto_server`` (writes serialised), with one patch: moto 5
recomputes SigV4 signatures wrongly when a query string holds an encoded ``/`` (every
``ListObjectsV2`` with ``Prefix=a/``), refusing correct requests with SignatureDoesNotMatch. The
patch skips only that signature comparison; the access key must still exist and every action is
still checked against the user's IAM policy, which is what the read-only test is about.
"""

from __future__ import annotations

import moto.iam.access_control as access_control
from modelshelf_s3._moto_main import main

access_control.IAMRequestBase.check_signature = lambda self: None  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
