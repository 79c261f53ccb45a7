"""A small client of kiln's HTTP API for the benchmark scripts (standard library only)."""
import json
import sys
import time
import urllib.error
import urllib.request
import uuid

LENET = {
    "input_dim": 784,
    "layers": [
        {"type": "dense", "units": 300, "activation": "relu"},
        {"type": "dense", "units": 100, "activation": "relu"},
        {"type": "dense", "units": 10, "activation": "softmax"},
    ],
}


class ApiError(Exception):
    """A 4xx/5xx answer: its status and (JSON-decoded where it is JSON) body."""

    def __init__(self, status, body):
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def request(url, method, path, body=None, raw=None, headers=None):
    """One call: a JSON body or raw bytes; returns decoded JSON or the bytes, raises ApiError."""
    data = json.dumps(body).encode() if body is not None else raw
    h = {"Content-Type": "application/json"} if body is not None else {}
    h.update(headers or {})
    req = urllib.request.Request(url + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            payload = r.read()
            return json.loads(payload) if r.headers.get_content_type().endswith("json") else payload
    except urllib.error.HTTPError as e:
        text = e.read().decode(errors="replace")
        try:
            answer = json.loads(text)
        except ValueError:
            answer = text
        raise ApiError(e.code, answer) from None


class Kiln:
    def __init__(self, url, eval_dataset=None):
        self.url = url.rstrip("/")
        self.eval_dataset = eval_dataset

    def call(self, method, path, body=None, raw=None, headers=None):
        try:
            return request(self.url, method, path, body, raw, headers)
        except ApiError as e:
            sys.exit(f"error: {method} {path} answered {e.status}: {e.body}")

    def job(self, kind, model, params, dataset):
        """Runs a job to success; returns (seconds from POST to succeeded, job)."""
        t0 = time.perf_counter()
        body = {"kind": kind, "model": model, "dataset": dataset, "params": params}
        if self.eval_dataset:
            body["eval_dataset"] = self.eval_dataset
        j = self.call("POST", "/v1/jobs", body)
        while j["status"] not in ("succeeded", "failed", "cancelled"):
            time.sleep(0.05)
            j = self.call("GET", f"/v1/jobs/{j['id']}")
        secs = time.perf_counter() - t0
        if j["status"] != "succeeded":
            sys.exit(f"error: {kind} job {j['id']} {j['status']}: {j.get('error')}")
        print(f"{kind}: {secs:.1f} s", file=sys.stderr)
        return secs, j

    def download(self, model, path):
        with open(path, "wb") as f:
            f.write(self.call("GET", f"/v1/models/{model}/download"))

    def upload_model(self, path, name):
        boundary = uuid.uuid4().hex
        with open(path, "rb") as f:
            content = f.read()
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{name}\r\n"
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
        return self.call("POST", "/v1/models", raw=body,
                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
