// Golden bytes of the networking requests (hand-derived from Kata's agent.proto/types.proto field
// numbers, not from our own encoder): UpdateInterface, UpdateRoutes, AddARPNeighbors.
import { create, toBinary } from '@bufbuild/protobuf';
import test from 'ava';
import {
  AddARPNeighborsRequestSchema,
  UpdateInterfaceRequestSchema,
  UpdateRoutesRequestSchema,
} from '../../ts/gen/agent_pb.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const str = (s: string) => Buffer.from(s).toString('hex');

test('UpdateInterfaceRequest{interface: name, IPAddresses, mtu, hwAddr}', (t) => {
  const req = create(UpdateInterfaceRequestSchema, {
    interface: {
      name: 'eth0',
      hwAddr: '02:00:0a:00:00:07',
      mtu: 1400n,
      IPAddresses: [{ family: 0, address: '10.0.0.2', mask: '24' }],
    },
  });
  // Interface: 2:"eth0" | 3:{2:"10.0.0.2" 3:"24"} | 4:1400 (f8 0a) | 5:"02:00:0a:00:00:07"
  const iface =
    `1204${str('eth0')}` +
    `1a0e1208${str('10.0.0.2')}1a02${str('24')}` +
    '20f80a' +
    `2a11${str('02:00:0a:00:00:07')}`;
  t.is(hex(toBinary(UpdateInterfaceRequestSchema, req)), `0a2c${iface}`);
});

test('UpdateRoutesRequest{routes: Routes{Routes: [default via gw dev eth0]}}', (t) => {
  const req = create(UpdateRoutesRequestSchema, {
    routes: { Routes: [{ gateway: '10.0.0.1', device: 'eth0' }] },
  });
  // Route: 2:"10.0.0.1" 3:"eth0" (16 bytes); Routes: 1:Route (18); request: 1:Routes (20)
  const route = `1208${str('10.0.0.1')}1a04${str('eth0')}`;
  t.is(hex(toBinary(UpdateRoutesRequestSchema, req)), `0a120a10${route}`);
});

test('AddARPNeighborsRequest{neighbors: ARPNeighbors{[to, device, lladdr, state]}}', (t) => {
  const req = create(AddARPNeighborsRequestSchema, {
    neighbors: {
      ARPNeighbors: [
        {
          toIPAddress: { address: '10.0.0.1' },
          device: 'eth0',
          lladdr: '02:00:0a:00:00:01',
          state: 128,
        },
      ],
    },
  });
  // ARPNeighbor: 1:{2:"10.0.0.1"} (12) | 2:"eth0" (6) | 3:lladdr (19) | 4:128 (80 01) → 40 bytes
  const n =
    `0a0a1208${str('10.0.0.1')}` +
    `1204${str('eth0')}` +
    `1a11${str('02:00:0a:00:00:01')}` +
    '208001';
  t.is(hex(toBinary(AddARPNeighborsRequestSchema, req)), `0a2a0a28${n}`);
});
