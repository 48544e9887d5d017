"""发展和改革局 (the development-and-reform commission, 洞头区发展和改革局): its investment-project approval
platform (投资项目在线审批监管平台), whose processing record the hub reads over ODBC."""
