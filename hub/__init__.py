"""The data-exchange hub (政务服务数据交换系统): core settings, state database and the `hub` command.

Importing it scrubs this process's log records of personal data (:mod:`hub.logmask`).
"""

from hub import logmask

logmask.install()

__version__ = "0.1.0"
