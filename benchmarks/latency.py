"""Reply latency over WebRTC on loopback; prints JSON. Same as `voicebot bench latency [OPTIONS]`."""

from voicebot.cli.bench import bench

if __name__ == "__main__":
    bench(["latency", *__import__("sys").argv[1:]], prog_name="benchmarks/latency.py")
