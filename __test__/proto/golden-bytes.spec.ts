// Golden bytes from vectors.md §2.6 and agent-protocol.md §10.1: our messages must encode
// byte-for-byte as the Kata agent and ttrpc expect.
import { create, toBinary, fromBinary } from '@bufbuild/protobuf';
import test from 'ava';
import { CopyFileRequestSchema } from '../../ts/gen/agent_pb.js';
import { RequestSchema, ResponseSchema } from '../../ts/gen/ttrpc_pb.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const PATH = '/run/kata-containers/shared/containers/c1-0011223344556677-cm';
const PATH_HEX =
  '0a3d2f72756e2f6b6174612d636f6e7461696e6572732f7368617265642f636f6e7461696e6572732f63312d303031313232333334343535363637372d636d';
const FILE_PAYLOAD = `${PATH_HEX}100218a4830242026869`;

test('CopyFileRequest for a 2-byte file encodes as the golden bytes', (t) => {
  const msg = create(CopyFileRequestSchema, {
    path: PATH,
    fileSize: 2n,
    fileMode: 33188,
    data: new TextEncoder().encode('hi'),
  });
  t.is(hex(toBinary(CopyFileRequestSchema, msg)), FILE_PAYLOAD);
});

test('CopyFileRequest for a directory with owner encodes as the golden bytes', (t) => {
  const msg = create(CopyFileRequestSchema, {
    path: PATH,
    fileMode: 16877,
    dirMode: 16872,
    uid: 1000,
    gid: 1000,
  });
  t.is(hex(toBinary(CopyFileRequestSchema, msg)), `${PATH_HEX}18ed830120e8830128e80730e807`);
});

test('the ttrpc Request wrapping CopyFile is the golden 110 bytes', (t) => {
  const payload = Buffer.from(FILE_PAYLOAD, 'hex');
  t.is(payload.length, 73);
  const req = create(RequestSchema, {
    service: 'grpc.AgentService',
    method: 'CopyFile',
    payload,
    timeoutNano: 30_000_000_000n,
  });
  const bytes = toBinary(RequestSchema, req);
  t.is(bytes.length, 110);
  t.is(
    hex(bytes),
    `0a11677270632e4167656e74536572766963651208436f707946696c651a49${FILE_PAYLOAD}2080d88ee16f`,
  );
});

test('an OK ttrpc response with an explicit empty status decodes', (t) => {
  const res = fromBinary(ResponseSchema, Buffer.from('0a00', 'hex'));
  t.is(res.status?.code, 0);
  t.is(res.payload.length, 0);
});
