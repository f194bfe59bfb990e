"""Per-task replay buffers with stratified sampling (shared leaf; docs/design.md, "Agents").

One ring buffer per training task in host memory (numpy ``(T, capacity, ...)`` arrays, allocated
lazily by the OS, so a large capacity costs only what is filled). ``sample(rng, n)`` draws ``n``
transitions uniformly from *each* task's buffer: the stratified batch of MOORE's MTSAC and of
Meta-World+ (128 per task), grouped ``(T, n, ...)`` as the agents' networks expect.

``state()`` / ``load_state()`` hold the filled part only, in plain arrays (``np.savez``, no
pickle), so a checkpoint holds the buffer exactly and stays small early in training.
"""

from __future__ import annotations

import numpy as np

FIELDS = ("obs", "actions", "rewards", "next_obs", "terminated")


class TaskReplay:
    def __init__(self, num_tasks: int, capacity: int, obs_dim: int, act_dim: int) -> None:
        self.num_tasks, self.capacity = num_tasks, capacity
        shapes = {"obs": (obs_dim,), "actions": (act_dim,), "rewards": (), "next_obs": (obs_dim,),
                  "terminated": ()}  # fmt: skip
        self.data = {k: np.zeros((num_tasks, capacity, *s), np.float32) for k, s in shapes.items()}
        self.pos = np.zeros(num_tasks, np.int64)
        self.size = np.zeros(num_tasks, np.int64)

    def add(self, task_pos: np.ndarray, **batch: np.ndarray) -> None:
        """Add one transition per env; ``task_pos[i]`` is env ``i``'s task position (0..T-1)."""
        for i, t in enumerate(task_pos):
            for k in FIELDS:
                self.data[k][t, self.pos[t]] = batch[k][i]
            self.pos[t] = (self.pos[t] + 1) % self.capacity
            self.size[t] = min(self.size[t] + 1, self.capacity)

    def sample(self, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
        """``n`` transitions of every task, ``(T, n, ...)``; every task must hold one."""
        idx = (rng.random((self.num_tasks, n)) * self.size[:, None]).astype(np.int64)
        rows = np.arange(self.num_tasks)[:, None]
        return {k: v[rows, idx] for k, v in self.data.items()}

    def state(self) -> dict[str, np.ndarray]:
        filled = int(self.size.max())
        return {**{k: v[:, :filled] for k, v in self.data.items()}, "pos": self.pos,
                "size": self.size}  # fmt: skip

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        filled = state["obs"].shape[1]
        if filled > self.capacity or state["obs"].shape[0] != self.num_tasks:
            raise ValueError(f"replay state of shape {state['obs'].shape[:2]} does not fit "
                             f"({self.num_tasks}, {self.capacity})")  # fmt: skip
        for k in FIELDS:
            self.data[k][:, :filled] = state[k]
        self.pos[:], self.size[:] = state["pos"], state["size"]
