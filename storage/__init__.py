"""SQL records, the job state machine, leases and the object store."""
