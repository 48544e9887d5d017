"""The departments' approval systems (部门审批系统): they take the cases the hub dispatches and
produce their steps over simulated time, each exposed through its department's own protocol."""
