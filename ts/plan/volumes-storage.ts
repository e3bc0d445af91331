// Agent Storage / Device entries as plain plan data (JSON-serializable); converted to the
// generated protobuf messages only when the requests are built.

/** Fields of the agent's `grpc.Storage` the planner sets; absent = proto default. */
export interface StorageInit {
  readonly driver: string;
  readonly driverOptions?: readonly string[];
  readonly source: string;
  readonly fstype: string;
  readonly options: readonly string[];
  readonly mountPoint: string;
}

/** Fields of the agent's `grpc.Device`. */
export interface DeviceInit {
  readonly id: string;
  readonly type: string;
  readonly vmPath: string;
  readonly containerPath: string;
}
