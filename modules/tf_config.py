"""``TF_CONFIG``: the cluster a tf.distribute worker belongs to, read and checked without importing TensorFlow.

TensorFlow's own resolver reads the same variable; checking it here first turns a typo into a message that says
what to set, instead of a worker waiting for peers that will never answer. Kept out of ``modules.two_tower`` so
that the command line's ``--help`` can quote ``TF_CONFIG_HELP`` without loading the model's package.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from modules.errors import ClusterError

TF_CONFIG_EXAMPLE = ('{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')
TF_CONFIG_HELP = (
    "TF_CONFIG is a JSON object naming every worker of the cluster (host:port, the same list on every worker) "
    "and which of them this process is, e.g. TF_CONFIG='" + TF_CONFIG_EXAMPLE + "'; set index 1 on the "
    "second worker, and so on. A \"chief\" list of one address may be added beside \"worker\": that task is "
    "then the chief; otherwise worker 0 is.")
_ADDRESS = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$")


@dataclass(frozen=True)
class Cluster:
    """What ``TF_CONFIG`` says: the cluster's addresses (chief first, as tf.distribute orders them) and this task."""

    addresses: tuple[str, ...]
    task_type: str  # "worker" or "chief"
    task_index: int
    has_chief: bool

    @property
    def n_workers(self) -> int:
        return len(self.addresses)

    @property
    def rank(self) -> int:
        """This task's place in ``addresses`` (0 is the chief)."""
        if self.task_type == "chief":
            return 0
        return self.task_index + int(self.has_chief)

    @property
    def is_chief(self) -> bool:
        return self.rank == 0


def parse_tf_config(text: str | None = None) -> Cluster:
    """The cluster of ``TF_CONFIG`` (``text``, default the environment's), checked: a bad or missing one is an
    ``ClusterError`` saying what is wrong and what to set (``TF_CONFIG_HELP``). Imports no TensorFlow."""
    if text is None:
        text = os.environ.get("TF_CONFIG")
    if text is None or not text.strip():
        raise ClusterError("training on several workers needs the TF_CONFIG environment variable, and it is not set. "
                         + TF_CONFIG_HELP)

    def bad(what: str) -> ClusterError:
        return ClusterError(f"TF_CONFIG {what}. {TF_CONFIG_HELP}")

    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise bad(f"is not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise bad(f"must be a JSON object, got {type(doc).__name__}")
    cluster, task = doc.get("cluster"), doc.get("task")
    if not isinstance(cluster, dict) or not cluster:
        raise bad("has no \"cluster\" object (the addresses of every worker)")
    other = sorted(set(cluster) - {"worker", "chief"})
    if other:
        raise bad(f"names task types {other} in \"cluster\": this training runs on \"worker\" tasks (and an "
                  "optional \"chief\") only; MultiWorkerMirroredStrategy needs no parameter server or evaluator")
    lists = {}
    for kind in ("chief", "worker"):
        if kind not in cluster:
            continue
        value = cluster[kind]
        if not isinstance(value, list) or not value or not all(isinstance(a, str) for a in value):
            raise bad(f"\"cluster\".{kind!r} must be a non-empty list of \"host:port\" strings, got {value!r}")
        for a in value:
            m = _ADDRESS.match(a)
            if not m or not 0 < int(m.group(2)) < 65536:
                raise bad(f"has the address {a!r} in \"cluster\".{kind!r}; addresses are \"host:port\" with a port "
                          "in 1-65535")
        lists[kind] = value
    if "worker" not in lists:
        raise bad("has no \"cluster\".\"worker\" list")
    if len(lists.get("chief", [])) > 1:
        raise bad(f"has {len(lists['chief'])} chiefs; at most one")
    addresses = tuple(lists.get("chief", []) + lists["worker"])
    dup = sorted({a for a in addresses if addresses.count(a) > 1})
    if dup:
        raise bad(f"lists the address(es) {dup} twice; every task needs its own host:port")
    if not isinstance(task, dict):
        raise bad("has no \"task\" object ({\"type\": \"worker\", \"index\": N}: which worker this process is)")
    ttype, index = task.get("type"), task.get("index", 0)
    if ttype not in lists:
        raise bad(f"has \"task\".\"type\" {ttype!r}; it must be one of {sorted(lists)} (a type in \"cluster\")")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(lists[ttype]):
        raise bad(f"has \"task\".\"index\" {index!r}; for type {ttype!r} it must be an int in "
                  f"0..{len(lists[ttype]) - 1} (the place of this worker's address in the list)")
    return Cluster(addresses, ttype, index, "chief" in lists)
