"""Secrets and files: what the coordinator keeps on disk is its owner's alone, holds no secret a
client could present, and no token needs to be on a command line.

- the data directory is 0700 and every database file (with its -wal and -shm) 0600, and an older
  directory left readable by others is narrowed at start, with a line in the log;
- the database holds neither the lease token a claim returned nor a host's credential;
- tokens are read from files (--operator-token-file, --worker-token-file) and a token given as a
  flag is warned about;
- `trainvisor up` writes coordinator.env 0600.
"""
import os
import stat
import subprocess

from conftest import TRAINVISOR, start_coordinator

CAPABILITY = {"cores": 2, "ram_gib": 4.0}


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def database_files(data_dir):
    return [os.path.join(data_dir, f) for f in os.listdir(data_dir)
            if f.startswith("coordinator.sqlite")]


def file_bytes(paths):
    out = b""
    for p in paths:
        with open(p, "rb") as f:
            out += f.read()
    return out


def test_the_data_directory_and_its_databases_are_owner_only(coordinator):
    c = coordinator
    status, reply = c.worker("POST", "/v1/job/claim", {"worker": "h", "capability": CAPABILITY})
    assert status == 200 and reply["job"], reply
    assert mode(c.data_dir) == 0o700
    files = database_files(c.data_dir)
    names = {os.path.basename(f) for f in files}
    assert {"coordinator.sqlite", "coordinator.sqlite-wal", "coordinator.sqlite-shm"} <= names
    for f in files:
        assert mode(f) == 0o600, f"{f}: {oct(mode(f))}"
    for root, dirs, entries in os.walk(c.data_dir):
        for d in dirs:
            assert mode(os.path.join(root, d)) & 0o077 == 0, os.path.join(root, d)
        for e in entries:
            assert mode(os.path.join(root, e)) & 0o077 == 0, os.path.join(root, e)


def test_the_database_holds_no_lease_token_and_no_credential(coordinator):
    c = coordinator
    credential = c.enrol("h")
    secret = credential.split(":", 1)[1]
    status, reply = c.worker("POST", "/v1/job/claim", {"worker": "h", "capability": CAPABILITY})
    assert status == 200 and reply["job"], reply
    job, lease = reply["job"]["id"], reply["lease_token"]
    assert c.worker("POST", f"/v1/job/{job}/heartbeat", {"lease_token": lease})[0] == 200
    on_disk = file_bytes(database_files(c.data_dir))
    assert lease.encode() not in on_disk
    assert secret.encode() not in on_disk
    # The holder's token still works: the coordinator compares digests.
    assert c.worker("POST", f"/v1/job/{job}/running", {"lease_token": lease})[0] == 200


def test_an_open_data_directory_is_narrowed_at_start(procs, tmp):
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    os.chmod(data, 0o755)
    c = start_coordinator(procs, tmp)
    assert mode(data) == 0o700
    assert "was mode 0755; made it 0700" in c.log()


def test_tokens_from_files_and_a_warning_for_tokens_on_the_command_line(procs, tmp):
    op_file, wk_file = os.path.join(tmp, "op"), os.path.join(tmp, "wk")
    for path, token in ((op_file, "op-from-file"), (wk_file, "wk-from-file")):
        with open(path, "w") as f:
            f.write(token + "\n")
        os.chmod(path, 0o600)
    env = {"TRAINVISOR_OPERATOR_TOKEN": "", "TRAINVISOR_WORKER_TOKEN": ""}
    c = start_coordinator(procs, tmp, extra_args=("--operator-token-file", op_file,
                                                  "--worker-token-file", wk_file),
                          env_extra=env)
    assert c.request("POST", "/v1/hosts/h/enrol", {},
                     {"X-Worker-Token": "wk-from-file"})[0] == 200
    assert c.request("POST", "/v1/manifest/reload", {},
                     {"X-Operator-Token": "op-from-file"})[0] == 200
    assert c.request("POST", "/v1/manifest/reload", {},
                     {"X-Operator-Token": "op-token-hostile"})[0] == 401
    assert "visible to other users" not in c.log()
    help_text = subprocess.run([TRAINVISOR, "coordinator", "--help"], capture_output=True,
                               text=True).stdout
    assert "--worker-token-file" in help_text and "Visible to other users" in help_text


def test_a_token_given_as_a_flag_is_warned_about(procs, tmp):
    c = start_coordinator(procs, tmp, extra_args=("--operator-token", "op-on-the-line"),
                          env_extra={"TRAINVISOR_OPERATOR_TOKEN": ""})
    assert "--operator-token on the command line is visible to other users" in c.log()
    assert c.request("POST", "/v1/manifest/reload", {},
                     {"X-Operator-Token": "op-on-the-line"})[0] == 200


def test_up_writes_coordinator_env_owner_only(procs, tmp):
    manifest = os.path.join(tmp, "cuda.toml")
    with open(manifest, "w") as f:
        # A job no CPU host may take: `up` starts, finds nothing it can run here and ends.
        f.write('[[jobs]]\nname = "gpu-only"\nmodel = "tiny"\nrequire_cuda = true\n')
    data = os.path.join(tmp, "up-data")
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    r = subprocess.run([TRAINVISOR, "up", manifest, "--data-dir", data], env=env,
                       capture_output=True, text=True, timeout=120)
    env_file = os.path.join(data, "coordinator.env")
    assert os.path.exists(env_file), r.stderr
    assert mode(env_file) == 0o600
    assert mode(data) == 0o700
    with open(env_file) as f:
        assert "TRAINVISOR_OPERATOR_TOKEN=" in f.read()
    for f in database_files(data):
        assert mode(f) == 0o600, f
