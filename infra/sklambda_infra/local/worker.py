"""One local "Lambda container": imports a handler once, then answers invocations until stdin closes.

Run as a script (`python -I -S -B worker.py HANDLER PATH...`) by the local stack, never imported by the handler's
process: it uses only the standard library, and sys.path is exactly the PATH arguments (the function's code,
then its layers) followed by the interpreter's standard library.

Protocol, one JSON object per line:
    worker -> stack  {"ready": true} | {"ready": false, "error": {...}}          once, after the import
    stack -> worker  {"id": ..., "event": ..., "context": {...}}
    worker -> stack  {"id": ..., "result": ...} | {"id": ..., "error": {...}}
The handler's own output (print, logging, EMF metrics) goes to stderr; the protocol has the original stdout.
"""

import importlib
import json
import os
import sys
import time
import traceback


class LambdaContext:
    """The attributes and method of the Lambda Python runtime's context object that handlers use."""

    def __init__(self, data):
        self.function_name = data["function_name"]
        self.function_version = data.get("function_version", "$LATEST")
        self.invoked_function_arn = data["invoked_function_arn"]
        self.memory_limit_in_mb = int(data["memory_limit_in_mb"])
        self.aws_request_id = data["aws_request_id"]
        self.log_group_name = data.get("log_group_name", "/aws/lambda/" + self.function_name)
        self.log_stream_name = data.get("log_stream_name", "local")
        self.identity = None
        self.client_context = None
        self._deadline_ms = int(data["deadline_ms"])

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))


def _error(exc):
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_exception(type(exc), exc, exc.__traceback__),
    }


def _take_protocol_streams():
    """Keep the real stdin/stdout for the protocol; the handler gets /dev/null and stderr."""
    proto_in = os.fdopen(os.dup(0), "r", encoding="utf-8")
    proto_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - lives as long as the process
    sys.stdout = open(1, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
    return proto_in, proto_out


def _send(stream, message):
    stream.write(json.dumps(message) + "\n")
    stream.flush()


def main(argv):
    handler_name, paths = argv[0], argv[1:]
    proto_in, proto_out = _take_protocol_streams()
    sys.path[:0] = paths
    module_name, _, function_name = handler_name.rpartition(".")
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as e:
        sys.stderr.write(f"[ERROR] Runtime.ImportModuleError: Unable to import module '{module_name}': {e}\n")
        traceback.print_exc()
        _send(proto_out, {"ready": False, "error": {**_error(e), "errorType": "Runtime.ImportModuleError"}})
        return 1
    _send(proto_out, {"ready": True})
    for line in proto_in:
        request = json.loads(line)
        context = LambdaContext(request["context"])
        try:
            result = handler(request["event"], context)
        except Exception as e:
            traceback.print_exc()
            reply = {"id": request["id"], "error": _error(e)}
        else:
            try:
                json.dumps(result)
                reply = {"id": request["id"], "result": result}
            except (TypeError, ValueError) as e:
                sys.stderr.write(f"[ERROR] Runtime.MarshalError: Unable to marshal response: {e}\n")
                reply = {"id": request["id"], "error": {**_error(e), "errorType": "Runtime.MarshalError"}}
        sys.stdout.flush()
        sys.stderr.flush()
        _send(proto_out, reply)
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    # Lambda never finalizes a runtime's interpreter (it freezes the sandbox, then ends it): no atexit handlers, no
    # module teardown. Finalizing one that holds scikit-learn and pandas takes 1-2 s, which every stop and recycle
    # of a worker waited for. What the handler wrote is flushed first: the stack forwards it as the function's logs.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
