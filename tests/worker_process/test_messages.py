"""What crosses between the API process and a worker process is declared once: each side implements
exactly the operations of its Protocol, with the Protocol's own signatures, and the calls are the
task service's own."""

from __future__ import annotations

import inspect

from latentcast.server.tasks.service import TaskService
from latentcast.server.tasks.worker_service import WorkerService
from latentcast.server.worker_process.api_side import Answers
from latentcast.server.worker_process.channel import operations
from latentcast.server.worker_process.messages import ToApiProcess, ToWorkerProcess
from latentcast.server.worker_process.worker_side import ApiProcessProxy, Orders


def public_methods(cls: type) -> set[str]:
    return {name for name, member in vars(cls).items() if not name.startswith("_") and callable(member)}


def signature(cls: type, name: str) -> inspect.Signature:
    return inspect.signature(getattr(cls, name))


def test_each_side_implements_exactly_the_operations_of_its_protocol_with_their_signatures() -> None:
    for side in (ApiProcessProxy, Answers):  # the worker process's proxy, the API process's answers
        assert public_methods(side) == operations(ToApiProcess), side
        for name in operations(ToApiProcess):
            assert signature(side, name) == signature(ToApiProcess, name), f"{side.__name__}.{name}"
            is_call = inspect.iscoroutinefunction(getattr(ToApiProcess, name))
            assert inspect.iscoroutinefunction(getattr(side, name)) == is_call, f"{side.__name__}.{name}"
    # Orders also lets the worker hear the `cancel` orders, which is no operation: never served.
    assert public_methods(Orders) - {"on_cancel"} == operations(ToWorkerProcess)
    assert "on_cancel" not in operations(ToWorkerProcess)


def test_the_calls_are_the_task_services_own() -> None:
    for name in operations(WorkerService):
        ours, theirs = signature(TaskService, name), signature(WorkerService, name)
        # TaskService may take more (keyword arguments with defaults), never less.
        assert list(theirs.parameters.items()) == [
            (key, value) for key, value in ours.parameters.items() if key in theirs.parameters
        ], name
        extra = [p for key, p in ours.parameters.items() if key not in theirs.parameters]
        assert all(p.kind is p.KEYWORD_ONLY and p.default is not p.empty for p in extra), name
    assert operations(ToApiProcess) - operations(WorkerService) == {"ready", "heartbeat", "preview_time"}
