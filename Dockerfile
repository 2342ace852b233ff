# voicebot: HTTP/WebRTC on 8080, SIP on 5060 (UDP and TCP), RTP on 20000-20999/udp.
# Models (Whisper tiny.en, Piper en_US-joe-medium) come with the Python packages: nothing is
# downloaded when the container runs. Call records and customer data live in /data (a volume).
# The database starts empty: the demo customers (known PINs) only with VOICEBOT_DATABASE__SEED_DEMO=true.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    VOICEBOT_DATABASE__URL=sqlite:////data/voicebot.db

# libgomp: OpenMP for CTranslate2 and onnxruntime; libsndfile: soundfile.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY voicebot ./voicebot
COPY dialogs ./dialogs
COPY audio ./audio
COPY telephony ./telephony
RUN pip install ".[postgres]" && rm -rf /src

RUN useradd --system --create-home --home-dir /data voicebot
USER voicebot
WORKDIR /data
VOLUME ["/data"]

EXPOSE 8080/tcp 5060/udp 5060/tcp 20000-20999/udp

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"

# A voicebot.yaml in /data (the working directory) is picked up if present.
CMD ["voicebot", "serve", "--host", "0.0.0.0", "--port", "8080"]
