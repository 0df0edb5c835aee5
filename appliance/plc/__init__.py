"""PLC-facing outputs: a Modbus TCP server with a vision-sensor handshake, MQTT and webhooks.

Each output subscribes to the result bus (or is driven by a PLC) and never blocks the pipeline:
work is handed to the output's own thread. `outputs.start_outputs(links)` starts the ones the
configuration enables; docs/plc.md describes the register map and the PLC call sequences.
"""
