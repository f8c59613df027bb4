"""BlueZoo, the BlueZ emulation of the BLE tests, run with one change: a
disconnect removes the GATT objects the connection made, as BlueZ removes
a peripheral's on a disconnect. BlueZoo 1.0.2 keeps them, so a second
Connect to the same peripheral fails (EEXIST, exporting them again) and a
peripheral could be connected to once per BlueZoo lifetime: discovery's
browse, then the adopted device's own connection, would be impossible.

Usage: as the bluezoo command (same arguments)."""

import sys

from bluezoo import bluezoo, device

_disconnect = device.Device.disconnect


async def disconnect(self, uuid=None):
    await _disconnect(self, uuid)
    # Characteristics before their services, as they were made after them.
    for link in reversed(list(self.services.values())):
        self.peer_adapter.mock.remove_object(link)
    self.services.clear()
    await self.peer.ServicesResolved.set_async(False)
    await self.ServicesResolved.set_async(False)


device.Device.disconnect = disconnect

if __name__ == "__main__":
    sys.exit(bluezoo.main())
