"""The public Islo Python SDK, unmodified, against a cluster: a sandbox created through one
node and used through another (driven by crates/islo-cli/tests/cluster.rs).

    python cluster_sdk.py create NAME    # ISLO_BASE_URL: the node to create through
    python cluster_sdk.py use NAME       # ISLO_BASE_URL: another node
"""
import os
import sys

from islo import Islo
from islo.custom.exec import exec_and_wait_sync

step, name = sys.argv[1], sys.argv[2]
client = Islo()  # ISLO_BASE_URL, ISLO_COMPUTE_URL, ISLO_API_KEY
if step == "create":
    made = client.sandboxes.create_sandbox(name=name, image=os.environ["ISLO_TEST_IMAGE"])
    assert made.status == "running", made
elif step == "use":
    r = exec_and_wait_sync(client, name, ["sh", "-c", "hostname; echo err >&2; exit 3"], poll_interval=0.05)
    assert (r.stdout, r.stderr, r.exit_code) == (name + "\n", "err\n", 3), r
    client.sandboxes.delete_sandbox(name)
    assert client.sandboxes.list_sandboxes(name_prefix=name).total == 0
else:
    sys.exit(f"unknown step {step}")
print("ok")
