"""Typed websocket events about background tasks."""

from __future__ import annotations

from typing import Literal, TypedDict

from qweb.realtime import broadcast


def task_group(task_id: int) -> str:
    return f"task.{task_id}"


class TaskProgress(TypedDict):
    type: Literal["task.progress"]
    task_id: int
    state: str
    progress: float
    label: str
    error: str


def task_broadcast(event: TaskProgress) -> None:
    broadcast(task_group(event["task_id"]), event)
