"""python manage.py lts_profile --device NAME [...] < archs.jsonl: latency and peak memory, through the shared cache."""
from __future__ import annotations

import json
import socket
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from searches import services
from searches.core.arch import Architecture, ConfigError
from searches.core.profiling import BACKENDS, DTYPES, MODES, ProfileSettings, ProfilingError, largest_dims, profile
from searches.models import Device, Measurement


def measurement_json(m: Measurement, *, cached: bool) -> dict:
    """One output line: the archid, latency statistics in seconds, peak memory in MB, settings and device."""
    out = {"valid": True, "archid": m.archid, "status": m.status, "cached": cached, "device": m.device.name,
           "settings": services.measurement_settings(m).to_dict()}
    if m.status == Measurement.Status.DONE:
        out["latency_s"] = {"median": m.latency_median_s, "p10": m.latency_p10_s, "p90": m.latency_p90_s,
                            "mean": m.latency_mean_s, "std": m.latency_std_s, "n": m.latency_n}
        out["peak_memory_mb"] = m.peak_memory_mb
        out["param_bytes"] = m.param_bytes
        out["onnx_file_bytes"] = m.onnx_file_bytes
        out["hardware"] = m.details.get("device", {})
        out["host_check"] = m.details.get("host")
    elif m.status == Measurement.Status.FAILED:
        out["error"] = m.error
    return out


class Command(BaseCommand):
    help = ("Read architecture JSON lines on stdin (as lts_arch) and write one JSON result per line: latency and peak "
            "memory on DEVICE, served from the shared cache when that key was measured before.")

    def add_arguments(self, parser):
        parser.add_argument("--device", required=True, help="device name (its worker consumes profile.NAME)")
        parser.add_argument("--backend", choices=BACKENDS, default="torch")
        parser.add_argument("--batch-size", type=int, default=1)
        parser.add_argument("--seq-len", type=int, default=1024)
        parser.add_argument("--threads", type=int, default=1)
        parser.add_argument("--mode", choices=MODES, default="prefill")
        parser.add_argument("--dtype", choices=DTYPES, default="float32")
        parser.add_argument("--cuda", action="store_true", help="measure on the device's GPU")
        parser.add_argument("--local", action="store_true",
                            help="measure on this machine in this process (no worker), registering it as DEVICE")
        parser.add_argument("--wait", type=float, default=3600.0, help="seconds to wait for the device's worker")
        parser.add_argument("--host-wait", type=float, default=ProfileSettings.host_wait_s,
                            help="seconds a measurement may wait out slow phases of a shared host (0: no check)")

    def handle(self, *args, **opts):
        try:
            settings = ProfileSettings(backend=opts["backend"], batch_size=opts["batch_size"], seq_len=opts["seq_len"],
                                       threads=opts["threads"], mode=opts["mode"], dtype=opts["dtype"],
                                       device="cuda" if opts["cuda"] else "cpu", host_wait_s=opts["host_wait"])
        except ConfigError as exc:
            raise CommandError(f"invalid settings: {exc}") from None
        device = self._device(opts["device"], local=opts["local"])
        beyond = services.profile_limit_errors(device, settings)
        if beyond:
            raise CommandError("invalid settings: " + "; ".join(f"{k}: {v}" for k, v in beyond.items()))
        pending: list[tuple[int, object]] = []  # (line number, MeasurementRequest or error dict)
        for number, line in enumerate(sys.stdin, 1):
            if not line.strip():
                continue
            try:
                arch = Architecture.from_dict(json.loads(line))
                too_large = services.profile_limit_errors(device, settings, largest_dims(arch))
                if too_large:
                    raise ConfigError(too_large)
                request = services.do_request_measurement(arch, device, settings, dispatch=not opts["local"])
                pending.append((number, request))
            except json.JSONDecodeError as exc:
                pending.append((number, {"valid": False, "line": number, "error": f"not JSON: {exc.msg}"}))
            except ConfigError as exc:
                pending.append((number, {"valid": False, "line": number, "error": str(exc)}))
        for _number, item in pending:
            if isinstance(item, dict):
                self._emit(item)
                continue
            m, cached = item.measurement, item.cached
            if opts["local"] and m.status in (Measurement.Status.PENDING, Measurement.Status.FAILED):
                self._measure_here(m)
            elif m.status in (Measurement.Status.PENDING, Measurement.Status.RUNNING):
                self._wait(m, opts["wait"])
            m.refresh_from_db()
            self._emit(measurement_json(m, cached=cached and m.status == Measurement.Status.DONE))

    def _emit(self, obj: dict) -> None:
        self.stdout.write(json.dumps(obj))
        self.stdout.flush()

    def _device(self, name: str, *, local: bool) -> Device:
        if local:
            # --local makes this command the profiling worker (a CLI entry point, not a service): it registers its
            # device as a worker does. tests/test_import_graph.py allows exactly this import of worker code.
            from workers.devices import register_device

            return register_device(name, worker_name=f"lts_profile@{socket.gethostname()}")
        device = Device.objects.filter(name=name).first()
        if device is None:
            raise CommandError(f"no device named {name!r}. Start its profiling worker on the target machine: "
                               f"LTS_DEVICE={name} celery -A lts_web worker -Q profile.{name} --concurrency 1 "
                               "(or measure here with --local)")
        if not device.is_online:
            self.stderr.write(f"device {name!r} is offline (last heartbeat {device.last_heartbeat}); "
                              "requests wait in its queue until its worker returns")
        return device

    def _measure_here(self, m: Measurement) -> None:
        worker = f"lts_profile@{socket.gethostname()}"
        if m.status == Measurement.Status.FAILED:
            Measurement.objects.filter(pk=m.pk).update(status=Measurement.Status.PENDING)
        if not services.try_claim_measurement(m.pk, worker):
            return self._wait(m, 3600)
        try:
            result = profile(Architecture.from_dict(m.config), services.measurement_settings(m))
        except ProfilingError as exc:
            services.do_fail_measurement(m.pk, worker, str(exc))
            return
        services.do_save_measurement(m.pk, worker, result)

    def _wait(self, m: Measurement, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            m.refresh_from_db(fields=["status"])
            if m.status in (Measurement.Status.DONE, Measurement.Status.FAILED):
                return
            time.sleep(0.5)
        raise CommandError(f"timed out after {timeout_s:.0f} s waiting for {m.archid} on {m.device.name}")
