"""Realistic reports from a railway station section, sent through ingest as a phone would."""

from __future__ import annotations

import io
import json
import random
import uuid
from collections.abc import Callable

import httpx
from PIL import Image, ImageDraw, ImageFilter

# (text, category, place, unit, photos): what the section's WeChat groups used to carry.
SAMPLES = [
    ("3站台配电箱冒烟，有焦糊味，已疏散附近旅客", "station", "3站台", "北京南站", 2),
    ("K123+400处线路异物，疑似塑料布缠绕接触网", "overhead_line", "K123+400", "京沪线工务段", 1),
    ("5道岔转换不到位，信号显示红光带", "signal", "5号道岔", "北京南站", 1),
    ("候车室旅客拥挤，进站口排队超过两百米", "passengers", "候车室", "北京南站", 1),
    ("暴雨导致站场积水，部分股道被淹没", "weather", "站场", "丰台站", 3),
    ("G102次列车车门故障，无法关闭", "rolling_stock", "7站台", "北京南站", 1),
    ("区间发现钢轨折断，已通知封锁", "track", "K98+120", "京沪线工务段", 2),
    ("出站口扶梯有旅客摔倒受伤，已呼叫120", "safety", "出站口", "丰台站", 1),
    ("站前广场路灯不亮", "station", "站前广场", "丰台站", 0),
    ("编组场落石，靠近12道", "track", "编组场", "丰台西站", 1),
    ("Signal failure at the north throat, red section showing", "signal", "北咽喉", "丰台西站", 0),
    ("候车室空调漏水，地面湿滑", "station", "候车室", "丰台站", 1),
]


def scene_photo(seed: int) -> bytes:
    """A camera-sized JPEG that looks like a scene (sky, ground, a structure), not noise."""
    rng = random.Random(seed)  # noqa: S311 - a picture, not a secret
    width, height = 1280, 960
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    sky, ground = (
        rng.choice([(135, 170, 200), (90, 100, 120)]),
        rng.choice([(90, 80, 70), (60, 70, 60)]),
    )
    for y in range(height):
        mix = y / height
        colour = tuple(int(s * (1 - mix) + g * mix) for s, g in zip(sky, ground, strict=True))
        draw.line([(0, y), (width, y)], fill=colour)
    for _ in range(6):
        x, w = rng.randrange(width), rng.randrange(40, 300)
        top = rng.randrange(height // 3, height - 100)
        shade = tuple(rng.randrange(40, 200) for _ in range(3))
        draw.rectangle([x, top, x + w, height], fill=shade)
    image = image.filter(ImageFilter.GaussianBlur(1.5))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


async def send_demo_reports(
    ingest_url: str, count: int, *, token: str, say: Callable[[str], None]
) -> int:
    """Send `count` sample reports (cycling through the samples), `say`ing a line for each
    as it is answered; how many ingest refused."""
    failed = 0
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=ingest_url, timeout=60, headers=headers) as client:
        for number in range(count):
            text, category, place, unit, photos = SAMPLES[number % len(SAMPLES)]
            report = {
                "text": text,
                "category": category,
                "place": place,
                "unit": unit,
                "reporter_id": f"demo-{number % 5}",
                "client_report_id": str(uuid.uuid4()),
            }
            files = [
                ("photos", (f"photo{i}.jpg", scene_photo(number * 10 + i), "image/jpeg"))
                for i in range(photos)
            ]
            answer = await client.post(
                "/v1/reports",
                data={"report": json.dumps(report, ensure_ascii=False)},
                files=files,
            )
            if answer.status_code == 202:
                say(f"sent   {text[:30]} → {answer.json()['status_url']}")
            else:
                failed += 1
                say(f"failed {text[:30]}: {answer.status_code} {answer.text[:200]}")
    return failed
