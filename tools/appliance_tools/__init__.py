"""Development tools of the edge appliance: the demo (models, video, config), `appliance bench`, the
REST load generator, the soak test and the Modbus bench. Not installed on the device: the image
installs the runtime wheel (edge-appliance) only. Its commands reach `appliance` through the
entry-point group `appliance.commands` (appliance/cli/tools.py)."""
