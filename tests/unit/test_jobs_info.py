"""Job identity from the Slurm prolog: what deploy/slurm/prolog.d/hpcwatch-job-info.sh writes is what
the jobs collector reads into hpc_job_info{account,partition}, whatever the account is called."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess

import helpers
import pytest
import test_jobs
from hpcwatch.exporters import labels
from hpcwatch.exporters.jobs.collector import JobsCollector
from hpcwatch.exporters.jobs.info import JobIdentity, parse_job_info, read_job_info
from hpcwatch.exporters.selfmetrics import parse_errors
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy", "slurm")
PROLOG = os.path.join(DEPLOY, "prolog.d", "hpcwatch-job-info.sh")
EPILOG = os.path.join(DEPLOY, "epilog.d", "hpcwatch-job-info.sh")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "jobs")
INFO = "run/hpcwatch/jobs"  # the default --collector.jobs.info-dir, under --path.rootfs

# Account names real Slurm 22.05 accepted from sacctmgr and handed to the prolog (see
# tests/integration/test_jobs_real.py), and ones only a hand-edited database or a future Slurm could.
HOSTILE = {
    "utf8": "chémie-物理-🚀",
    "quotes": 'q"uo\'te`s`',
    "pipe": "a|b|c",
    "newline": "new\nline",
    "backslash": "back\\slash\\n",
    "shell": "$(reboot);`id`",
    "long": "x" * 2048,
    "equals": "k=v=w",
}


def run(script: str, info_dir: str, **env: str) -> subprocess.CompletedProcess:
    # slurmd runs prologs with an almost empty environment and no search path; so do we.
    return subprocess.run(["/bin/sh", script], env={"HPCWATCH_JOB_INFO_DIR": info_dir, **env},
                          capture_output=True, timeout=30, check=False)


def prolog(info_dir: str, jobid: str, account: str, partition: str = "batch", user: str = "alice",
           uid: str = "1000") -> None:
    proc = run(PROLOG, info_dir, SLURM_JOB_ID=jobid, SLURM_JOB_ACCOUNT=account, SLURM_JOB_PARTITION=partition,
               SLURM_JOB_USER=user, SLURM_JOB_UID=uid)
    assert proc.returncode == 0 and proc.stdout == proc.stderr == b""


def collector(base: str, **options: object) -> JobsCollector:
    """The jobs collector on a fixture tree that is also its --path.rootfs (where run/hpcwatch/jobs lives)."""
    return test_jobs.collector(base, rootfs=base, **options)


def scrape(c: JobsCollector) -> str:
    """One scrape of this collector instance (its cache of prolog records kept between calls)."""
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.collector_success(text) == {"jobs": 1.0}
    return text


def info(text: str) -> dict[str, dict[str, str]]:
    return {s["jobid"]: s for s in helpers.series_labels(text, "hpc_job_info")}


tree = test_jobs.tree  # the same writable copy of the fixture layouts


# --- the pure parser -----------------------------------------------------------------------------------

def test_parser_on_the_prolog_format():
    data = b"SLURM_JOB_ACCOUNT=physics\0SLURM_JOB_PARTITION=gpu\0SLURM_JOB_USER=alice\0SLURM_JOB_UID=1000\0"
    assert parse_job_info(data) == (JobIdentity("physics", "gpu", "alice", 1000), 0)
    # A newer prolog's extra entries are not errors; values keep every `=` after the first.
    assert parse_job_info(b"SLURM_JOB_QOS=high\0SLURM_JOB_ACCOUNT=k=v\0") == (JobIdentity(account="k=v"), 0)
    assert parse_job_info(b"") == (JobIdentity(), 0)
    assert parse_job_info(b"SLURM_JOB_ACCOUNT=\0") == (JobIdentity(), 0)


def test_parser_counts_what_it_cannot_use():
    # No `=`, a uid that is no number, and a last entry without its NUL (a file cut short).
    data = b"garbage\0SLURM_JOB_UID=12a\0SLURM_JOB_ACCOUNT=physics\0SLURM_JOB_PARTITION=gp"
    assert parse_job_info(data) == (JobIdentity(account="physics"), 3)
    assert parse_job_info(b"SLURM_JOB_UID=\xd9\xa1\0")[0].uid is None  # Arabic-Indic digit one: not a uid


def test_parser_makes_label_values():
    ident, bad = parse_job_info(b"SLURM_JOB_ACCOUNT=new\nline\0SLURM_JOB_PARTITION=" + b"p" * 300 + b"\0"
                                b"SLURM_JOB_USER=\xff\xfe\0")
    assert bad == 0
    assert ident.account == "new?line"  # control characters replaced (exporters/labels.py)
    assert ident.partition == "p" * labels.LIMIT
    assert ident.user == "\ufffd\ufffd"  # bytes that are no UTF-8


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_parser_never_raises_and_yields_label_values(data):
    ident, bad = parse_job_info(data)
    assert bad >= 0
    for v in (ident.account, ident.partition, ident.user):
        assert v == labels.value(v)  # already a label value: capped, no control characters
    assert ident.uid is None or ident.uid >= 0
    assert ident.jobid == "" or (ident.jobid.isascii() and ident.jobid == str(int(ident.jobid)))


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=300),
       st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=40))
def test_any_account_survives_the_format(account, partition):
    data = (f"SLURM_JOB_ACCOUNT={account}\0SLURM_JOB_PARTITION={partition}\0SLURM_JOB_UID=7\0").encode()
    assert parse_job_info(data) == (JobIdentity(labels.value(account), labels.value(partition), "", 7), 0)


def test_reader_names_only_job_files(tmp_path):
    d = str(tmp_path)
    (tmp_path / "42").write_bytes(b"SLURM_JOB_ACCOUNT=physics\0")
    assert read_job_info(d, "42") == (JobIdentity(account="physics"), 0)
    assert read_job_info(d, "43") == (None, 0)
    assert read_job_info(d, "../42") == (None, 0)
    assert read_job_info(str(tmp_path / "absent"), "42") == (None, 0)


# --- the shipped prolog and epilog ------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_prolog_writes_any_account_the_collector_reads_back(tmp_path, name):
    d = str(tmp_path / "jobs")
    account = HOSTILE[name]
    prolog(d, "501", account, partition="gpu|" + account)
    assert os.listdir(d) == ["501"]  # no temp file left behind
    ident, bad = read_job_info(d, "501")
    assert bad == 0
    assert ident == JobIdentity(labels.value(account), labels.value("gpu|" + account), "alice", 1000)
    assert os.stat(os.path.join(d, "501")).st_mode & 0o777 == 0o644


def test_prolog_caps_what_it_writes(tmp_path):
    d = str(tmp_path / "jobs")
    prolog(d, "502", "é" * 4000, partition="p" * 4000, user="u" * 4000, uid="1" * 100)
    assert os.path.getsize(os.path.join(d, "502")) < 4096
    ident, bad = read_job_info(d, "502")
    assert (ident.account, ident.partition, bad) == ("é" * labels.LIMIT, "p" * labels.LIMIT, 0)


def test_epilog_removes_the_file(tmp_path):
    d = str(tmp_path / "jobs")
    prolog(d, "503", "physics")
    prolog(d, "504", "chemistry")
    assert run(EPILOG, d, SLURM_JOB_ID="503").returncode == 0
    assert os.listdir(d) == ["504"]
    assert run(EPILOG, d, SLURM_JOB_ID="503").returncode == 0  # twice: nothing to do, still 0


def test_prolog_and_epilog_never_fail_the_job(tmp_path):
    d = str(tmp_path / "jobs")
    for jobid in ("", "../../etc/x", "5;reboot", "*", "12 13"):
        assert run(PROLOG, d, SLURM_JOB_ID=jobid, SLURM_JOB_ACCOUNT="a").returncode == 0
        assert run(EPILOG, d, SLURM_JOB_ID=jobid).returncode == 0
    assert not os.path.exists(d)
    unwritable = tmp_path / "file"
    unwritable.write_text("")
    assert run(PROLOG, str(unwritable / "sub"), SLURM_JOB_ID="505", SLURM_JOB_ACCOUNT="a").returncode == 0
    assert run(EPILOG, str(unwritable / "sub"), SLURM_JOB_ID="505").returncode == 0
    # Nothing but the job id: the entries are written empty, which the collector reads as unknown.
    assert run(PROLOG, d, SLURM_JOB_ID="506").returncode == 0
    assert read_job_info(d, "506") == (JobIdentity(), 0)


@pytest.mark.parametrize("layout,jobid,env", [
    ("v1", "7", {"SLURM_JOB_ACCOUNT": "physics", "SLURM_JOB_PARTITION": "gpu", "SLURM_JOB_USER": "alice"}),
    ("v2", "77", {"SLURM_JOB_ACCOUNT": 'chémie "q" | new\nline', "SLURM_JOB_PARTITION": "batch",
                  "SLURM_JOB_USER": "bob"}),
])
def test_fixture_files_are_what_the_prolog_writes(tmp_path, layout, jobid, env):
    d = str(tmp_path / "jobs")
    assert run(PROLOG, d, SLURM_JOB_ID=jobid, SLURM_JOB_UID="1000", **env).returncode == 0
    with open(os.path.join(d, jobid), "rb") as got, open(os.path.join(FIXTURES, layout, INFO, jobid), "rb") as want:
        assert got.read() == want.read()


# --- the collector ------------------------------------------------------------------------------------------

# Each fixture task's environment as slurmstepd sets it (SLURM_JOB_ID first); job 7's says astro/cpu, its
# prolog file physics/gpu, so which source won shows in the labels.

def test_collector_labels_jobs_with_the_prologs_account_and_partition():
    text = scrape(collector(os.path.join(FIXTURES, "v1")))
    by_job = info(text)
    # Job 7 has the prolog's file: it wins over the task's environment (which says astro/cpu). Job 5 has
    # none (prolog not installed): the environment of its batch task, readable to a root agent, says.
    assert by_job["7"] == {"jobid": "7", "user": "alice", "uid": "1000", "account": "physics", "partition": "gpu"}
    assert by_job["5"] == {"jobid": "5", "user": user(0), "uid": "0", "account": "root", "partition": "debug"}
    text = scrape(collector(os.path.join(FIXTURES, "v2")))
    assert info(text)["77"] == {"jobid": "77", "user": "bob", "uid": "1000", "account": 'chémie "q" | new?line',
                                "partition": "batch"}


def test_hostile_accounts_round_trip_through_the_exposition(tree):
    base = os.path.join(tree, "v1")
    for name, account in HOSTILE.items():
        prolog(os.path.join(base, INFO), "7", account, partition=name, uid="1000")
        text = scrape(collector(base))
        got = [s.labels for fam in text_string_to_metric_families(text) if fam.name == "hpc_job_info"
               for s in fam.samples if s.labels["jobid"] == "7"]
        assert got == [{"jobid": "7", "user": "alice", "uid": "1000", "account": labels.value(account),
                        "partition": name}], name


def test_identity_is_read_once_per_job_and_forgotten_when_it_ends(tree):
    base = os.path.join(tree, "v1")
    c = collector(base)
    assert info(scrape(c))["7"]["account"] == "physics"
    os.remove(os.path.join(base, INFO, "7"))  # the epilog ran before the cgroup went: still the same job
    assert info(scrape(c))["7"]["account"] == "physics"
    for ctl in ("memory", "cpuacct", "cpuset"):
        shutil.rmtree(os.path.join(base, "sys/fs/cgroup", ctl, "slurm_node01/uid_1000/job_7"), ignore_errors=True)
    assert "7" not in info(scrape(c))
    assert c._info == {}


def test_file_written_after_the_job_started_is_picked_up(tree):
    base = os.path.join(tree, "v1")
    c = collector(base)
    assert info(scrape(c))["5"]["account"] == "root"  # the environment's, until the prolog's file shows up
    prolog(os.path.join(base, INFO), "5", "late", partition="debug", user="root", uid="0")
    assert info(scrape(c))["5"] == {"jobid": "5", "user": "root", "uid": "0", "account": "late",
                                    "partition": "debug"}


def test_another_jobs_file_is_not_believed(tree):
    """A file whose uid is not the uid of the job's cgroup belongs to another job (job ids reused)."""
    base = os.path.join(tree, "v1")
    prolog(os.path.join(base, INFO), "5", "someone-else", user="mallory", uid="1234")
    # Not believed: the job's own task environment says instead; with that switched off, unknown.
    assert info(scrape(collector(base)))["5"] == {"jobid": "5", "user": user(0), "uid": "0",
                                                  "account": "root", "partition": "debug"}
    assert info(scrape(collector(base, environ=False)))["5"] == {"jobid": "5", "user": user(0), "uid": "0",
                                                                 "account": "", "partition": ""}


def test_malformed_file_counts_parse_errors_and_keeps_what_it_can(tree):
    base = os.path.join(tree, "v1")
    with open(os.path.join(base, INFO, "7"), "wb") as fh:
        fh.write(b"SLURM_JOB_ACCOUNT=physics\0junk\0SLURM_JOB_UID=1000\0SLURM_JOB_PARTITION=g")
    before = parse_errors("jobs_info")
    assert info(scrape(collector(base)))["7"]["account"] == "physics"
    assert parse_errors("jobs_info") == before + 2


def test_info_dir_can_be_switched_off_or_moved(tree):
    base = os.path.join(tree, "v1")
    assert info(scrape(collector(base, **{"info-dir": ""}, environ=False)))["7"]["account"] == ""
    moved = collector(base, **{"info-dir": "/var/lib/hpcwatch/jobs"}, environ=False)  # under --path.rootfs
    assert info(scrape(moved))["7"]["account"] == ""
    os.makedirs(os.path.join(base, "var/lib/hpcwatch"))
    shutil.move(os.path.join(base, INFO), os.path.join(base, "var/lib/hpcwatch/jobs"))
    assert info(scrape(moved))["7"]["account"] == "physics"


def user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


@pytest.mark.parametrize("script", [PROLOG, os.path.join(DEPLOY, "prolog.d", "hpcwatch-gpu-map.sh")])
def test_prologs_make_world_readable_directories_whatever_the_umask(tmp_path, script):
    """slurmd may run prologs with umask 077; the node agent reads as an unprivileged user."""
    d = tmp_path / "run" / "hpcwatch" / "jobs"
    env = {"PATH": "/usr/bin:/bin", "HPCWATCH_JOB_INFO_DIR": str(d), "HPCWATCH_GPU_MAP_DIR": str(d),
           "SLURM_JOB_ID": "601", "SLURM_JOB_ACCOUNT": "a", "SLURM_JOB_GPUS": "0"}
    proc = subprocess.run(["/bin/sh", "-c", 'umask 077; exec /bin/sh "$0"', script], env=env, timeout=30, check=False)
    assert proc.returncode == 0
    for path in (tmp_path / "run", tmp_path / "run" / "hpcwatch", d):
        assert path.stat().st_mode & 0o777 == 0o755, path
    assert (d / "601").stat().st_mode & 0o777 == 0o644


# --- the fallback: a task's environment, where a job has no prolog file --------------------------------------

def test_environment_is_the_fallback_only_where_no_prolog_file_is(tree):
    """One source per job: the prolog's file wherever it exists (even when the environment disagrees),
    the task's environment where it does not, nothing when that is switched off or unreadable."""
    base = os.path.join(tree, "v2")
    assert {j: (i["account"], i["partition"]) for j, i in info(scrape(collector(base))).items()} == {
        "77": ('chémie "q" | new?line', "batch"), "78": ("phys", "batch")}
    assert {j: i["account"] for j, i in info(scrape(collector(base, environ=False))).items()} == {
        "77": 'chémie "q" | new?line', "78": ""}
    # An unprivileged agent cannot read another user's environ (0400): as if there were none.
    os.remove(os.path.join(base, "proc", "3101", "environ"))
    assert info(scrape(collector(base)))["78"]["account"] == ""


def test_environment_read_once_per_job_and_not_when_the_prolog_file_answers(tree):
    """The task's environment is read on the first scrape that needs it and kept while the job runs; a
    job whose prolog file answers and whose path names it never costs a /proc read."""
    base = os.path.join(tree, "v1")
    c = collector(base)
    first = info(scrape(c))
    assert [rel for _root, rel in c._tasks] == ["uid_0/job_5"]  # job 7: its file and its path answer
    shutil.rmtree(os.path.join(base, "proc", "12364"))  # job 5's task has gone: its identity stays
    assert info(scrape(c)) == first


def test_a_cleared_environment_is_not_believed(tree):
    """A task that cleared its environment (env -i) or was caught before exec names no SLURM_JOB_ID: its
    other entries are not taken for the job's."""
    base = os.path.join(tree, "v1")
    with open(os.path.join(base, "proc", "12364", "environ"), "wb") as fh:
        fh.write(b"SLURM_JOB_ACCOUNT=forged\0PATH=/bin\0")
    assert info(scrape(collector(base)))["5"]["account"] == ""


def test_environment_and_prolog_file_share_one_parser():
    """The environ of a real Slurm 22.05 batch task (as slurmstepd sets it) through the prolog file's parser."""
    env = (b"SLURM_JOB_USER=alice\0SLURM_JOB_UID=1000\0SLURM_JOB_ID=0042\0SLURM_JOBID=42\0"
           b"SLURM_JOB_ACCOUNT=physics\0SLURM_JOB_PARTITION=gpu\0SLURM_JOB_QOS=normal\0PATH=/usr/bin\0")
    assert parse_job_info(env) == (JobIdentity("physics", "gpu", "alice", 1000, "42"), 0)
    assert parse_job_info(b"SLURM_JOB_ID=\xd9\xa1\0")[0].jobid == ""  # a Unicode digit is not a job id
    assert parse_job_info(b"SLURM_JOB_ID=1x\0") == (JobIdentity(), 1)
