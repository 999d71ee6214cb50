"""The ingest client: batches np.load reads back, the checks and conversions of encode_batch, and
send() against a real HTTP server in the test that records what arrives."""

import http.server
import io
import json
import socket
import threading

import numpy as np
import pytest

from trainvisor import ingest


def load_three(body: bytes):
    f = io.BytesIO(body)
    arrays = [np.load(f, allow_pickle=False) for _ in range(3)]
    assert f.read() == b"", "bytes after the third array"
    return arrays


def sample(rows=4, shape=(3,)):
    x = np.arange(rows * int(np.prod(shape)), dtype=np.float32).reshape(rows, *shape) / 7
    y = np.arange(rows) % 3
    t = 1_700_000_000_000_000_000 + np.arange(rows, dtype=np.int64) * 1000
    return x, y, t


def test_a_batch_is_three_arrays_np_load_reads_back():
    x, y, t = sample(5, (1, 2, 2))
    got_x, got_y, got_t = load_three(ingest.encode_batch(x, y, t))
    assert got_x.dtype == np.dtype("<f4") and got_x.shape == (5, 1, 2, 2)
    assert got_y.dtype == np.dtype("<i8") and got_t.dtype == np.dtype("<i8")
    np.testing.assert_array_equal(got_x, x)
    np.testing.assert_array_equal(got_y, y)
    np.testing.assert_array_equal(got_t, t)


def test_the_body_is_what_np_save_writes_for_the_converted_arrays():
    x, y, t = sample()
    f = io.BytesIO()
    np.save(f, x)
    np.save(f, y.astype(np.int64))
    np.save(f, t)
    assert ingest.encode_batch(x, y, t) == f.getvalue()


def test_numbers_and_times_are_converted():
    x = np.asfortranarray(np.arange(12, dtype=np.float64).reshape(4, 3))
    y = np.array([1, 2, 3, 255], dtype=np.uint8)
    t = np.array(["2024-01-01T00:00:00", "2024-01-01T00:00:00.001", "2024-01-01T00:00:01",
                  "2024-01-02"], dtype="datetime64[ms]")
    got_x, got_y, got_t = load_three(ingest.encode_batch(x, y, t))
    assert got_x.dtype == np.dtype("<f4") and got_x.flags.c_contiguous
    np.testing.assert_array_equal(got_x, x.astype(np.float32))
    assert got_y.tolist() == [1, 2, 3, 255]
    assert got_t[0] == 1_704_067_200_000_000_000
    assert got_t[1] - got_t[0] == 1_000_000


@pytest.mark.parametrize("x,y,t,message", [
    (np.zeros((2, 3), dtype=bool), [0, 1], [1, 2], "features: dtype bool is not a real number"),
    (np.zeros(3, dtype=np.float32), [0, 1, 2], [1, 2, 3], "features: shape (3,) is not"),
    (np.zeros((0, 3), dtype=np.float32), [], [], "has no rows"),
    (np.array([[1, np.nan]], dtype=np.float32), [0], [1], "features: row 0 holds a value that"),
    (np.array([[1, 1e39]]), [0], [1], "not finite in float32"),
    (np.zeros((2, 2)), np.array([0.0, 1.0]), [1, 2], "labels: dtype float64 is not an integer"),
    (np.zeros((2, 2)), [0, -1], [1, 2], "labels: row 1 (-1) is not in [0, 2**31)"),
    (np.zeros((2, 2)), [0, 2**31], [1, 2], "labels: row 1 (2147483648)"),
    (np.zeros((2, 2)), [0, 1, 2], [1, 2], "labels: shape (3,) does not match the 2 rows"),
    (np.zeros((2, 2)), [0, 1], [1.0, 2.0], "timestamps: dtype float64 is not int64"),
    (np.zeros((2, 2)), [0, 1], [[1, 2]], "timestamps: shape (1, 2) does not match"),
    (np.zeros((3, 2)), [0, 1, 2], [5, 7, 6], "timestamps: row 2 (6) is before row 1 (7)"),
    (np.zeros((2, 2)), [0, 1], [-1, 2], "timestamps: row 0 (-1) is negative"),
])
def test_what_the_coordinator_would_refuse_is_refused_here(x, y, t, message):
    with pytest.raises(ingest.BatchError) as e:
        ingest.encode_batch(x, y, t)
    assert message in str(e.value)


class Recorder(http.server.BaseHTTPRequestHandler):
    """Records each request on the server and answers with the server's scripted reply."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append((self.command, self.path, dict(self.headers), body))
        status, reply = self.server.reply
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    srv.seen = []
    srv.reply = (200, {"pipeline": "fmnist", "seq": 0, "rows": 4})
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_send_posts_the_batch_with_its_headers(server):
    client = ingest.IngestClient(f"http://127.0.0.1:{server.server_port}/", token="s3cret")
    x, y, t = sample()
    reply = client.send("fmnist", x, y, t, idempotency_key="batch-0001")
    assert reply == {"pipeline": "fmnist", "seq": 0, "rows": 4}
    method, path, headers, body = server.seen[0]
    assert method == "POST"
    assert path == "/v1/pipeline/fmnist/samples"
    assert headers["Content-Type"] == "application/x-trainvisor-batch"
    assert headers["X-Ingest-Token"] == "s3cret"
    assert headers["Idempotency-Key"] == "batch-0001"
    assert body == ingest.encode_batch(x, y, t)


def test_send_without_a_key_or_token_sends_neither_and_quotes_the_name(server):
    client = ingest.IngestClient(f"http://127.0.0.1:{server.server_port}",
                                 token_header="X-Worker-Token")
    client.send("a b/c", *sample())
    _, path, headers, _ = server.seen[0]
    assert path == "/v1/pipeline/a%20b%2Fc/samples"
    assert "Idempotency-Key" not in headers
    assert "X-Worker-Token" not in headers and "X-Ingest-Token" not in headers


def test_a_refusal_raises_with_the_coordinators_message(server):
    server.reply = (400, {"error": "timestamps: row 0 (5) is before the pipeline's last",
                          "status": 400})
    client = ingest.IngestClient(f"http://127.0.0.1:{server.server_port}")
    with pytest.raises(ingest.IngestError) as e:
        client.send("fmnist", *sample())
    assert e.value.status == 400
    assert "timestamps: row 0 (5) is before the pipeline's last" in str(e.value)
    assert "fmnist" in str(e.value)


def test_a_coordinator_that_does_not_answer_is_an_ingest_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ingest.IngestClient(f"http://127.0.0.1:{port}", timeout=5)
    with pytest.raises(ingest.IngestError) as e:
        client.send("fmnist", *sample())
    assert e.value.status == 0
    assert f"cannot reach http://127.0.0.1:{port}" in str(e.value)
