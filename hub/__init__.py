"""The data-exchange hub (政务服务数据交换系统): core settings, state database and the `hub` command."""

__version__ = "0.1.0"
