// Golden bytes for containerd's task v2 API (proto/containerd, from containerd 1.6.20). The hex was
// produced by `protoc --encode` from containerd's own .proto files (gogoproto lines stripped), so
// these tests pin our copies' package names and field numbers to upstream, and protobuf-es to protoc.
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { AnySchema, anyUnpack, TimestampSchema } from '@bufbuild/protobuf/wkt';
import test from 'ava';
import {
  CreateTaskRequestSchema,
  DeleteResponseSchema,
  file_containerd_task_v2_shim,
} from '../../ts/gen/containerd/task/v2/shim_pb.js';
import { TaskExitSchema } from '../../ts/gen/containerd/events/task_pb.js';
import { EnvelopeSchema } from '../../ts/gen/containerd/services/events/ttrpc/v1/events_pb.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const BUNDLE = '/run/containerd/io.containerd.runtime.v2.task/default/c1';

// What containerd sends to Create for `ctr run` with the overlayfs snapshotter and runc options.
const CREATE_HEX =
  '0a02633112382f72756e2f636f6e7461696e6572642f696f2e636f6e7461696e6572642e72756e74696d652e76322e7461736b2f64656661756c742f6331' +
  '1a430a076f7665726c617912076f7665726c61792209696e6465783d6f6666220a776f726b6469723d2f77220b75707065726469723d2f75220b6c6f7765726469723d2f6c' +
  '2a1f2f72756e2f636f6e7461696e6572642f6669666f2f312f63312d737464696e32202f72756e2f636f6e7461696e6572642f6669666f2f312f63312d7374646f7574' +
  '52240a1a636f6e7461696e6572642e72756e632e76312e4f7074696f6e731206120472756e63';

const createRequest = () =>
  create(CreateTaskRequestSchema, {
    id: 'c1',
    bundle: BUNDLE,
    rootfs: [
      {
        type: 'overlay',
        source: 'overlay',
        options: ['index=off', 'workdir=/w', 'upperdir=/u', 'lowerdir=/l'],
      },
    ],
    stdin: '/run/containerd/fifo/1/c1-stdin',
    stdout: '/run/containerd/fifo/1/c1-stdout',
    // containerd's typeurl names carry no type.googleapis.com/ prefix.
    options: { typeUrl: 'containerd.runc.v1.Options', value: Buffer.from('120472756e63', 'hex') },
  });

test('the Task service has containerd 1.6 names and method order', (t) => {
  const svc = file_containerd_task_v2_shim.services[0]!;
  t.is(svc.typeName, 'containerd.task.v2.Task');
  t.deepEqual(
    svc.methods.map((m) => m.name),
    [
      'State',
      'Create',
      'Start',
      'Delete',
      'Pids',
      'Pause',
      'Resume',
      'Checkpoint',
      'Kill',
      'Exec',
      'ResizePty',
      'CloseIO',
      'Update',
      'Wait',
      'Stats',
      'Connect',
      'Shutdown',
    ],
  );
});

test('CreateTaskRequest encodes as the golden bytes', (t) => {
  t.is(hex(toBinary(CreateTaskRequestSchema, createRequest())), CREATE_HEX);
});

test('CreateTaskRequest golden bytes decode and re-encode unchanged', (t) => {
  const msg = fromBinary(CreateTaskRequestSchema, Buffer.from(CREATE_HEX, 'hex'));
  t.is(msg.bundle, BUNDLE);
  t.deepEqual(msg.rootfs[0]?.options, ['index=off', 'workdir=/w', 'upperdir=/u', 'lowerdir=/l']);
  t.is(msg.stderr, '');
  t.is(msg.options?.typeUrl, 'containerd.runc.v1.Options');
  t.is(hex(toBinary(CreateTaskRequestSchema, msg)), CREATE_HEX);
});

test('DeleteResponse (what `shim delete` prints) encodes as the golden bytes', (t) => {
  const msg = create(DeleteResponseSchema, {
    pid: 4242,
    exitStatus: 137,
    exitedAt: { seconds: 1_700_000_000n, nanos: 5 },
  });
  t.is(hex(toBinary(DeleteResponseSchema, msg)), '0892211089011a080880e2cfaa061005');
});

test('a TaskExit event travels in an Envelope under its bare type name', (t) => {
  const exit = create(TaskExitSchema, {
    containerId: 'c1',
    id: 'c1',
    pid: 4242,
    exitedAt: { seconds: 1_700_000_000n },
  });
  t.is(hex(toBinary(TaskExitSchema, exit)), '0a026331120263311892212a060880e2cfaa06');
  const envelope = create(EnvelopeSchema, {
    timestamp: create(TimestampSchema, { seconds: 1_700_000_001n }),
    namespace: 'default',
    topic: '/tasks/exit',
    // containerd decodes events by typeurl's bare message name; a type.googleapis.com/ prefix fails.
    event: create(AnySchema, {
      typeUrl: 'containerd.events.TaskExit',
      value: toBinary(TaskExitSchema, exit),
    }),
  });
  const back = fromBinary(EnvelopeSchema, toBinary(EnvelopeSchema, envelope));
  t.is(back.topic, '/tasks/exit');
  t.is(anyUnpack(back.event!, TaskExitSchema)?.pid, 4242);
});
