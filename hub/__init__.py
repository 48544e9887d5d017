"""The data-exchange hub (政务服务数据交换系统), its ground floor.

Settings, clock, state database and migrations, shared models, masking, outbox: everything
here imports nothing of the rooms above it (docs/architecture.md).

Importing it scrubs this process's log records of personal data (:mod:`hub.logmask`).
"""

from hub import logmask

logmask.install()

__version__ = "0.1.0"
