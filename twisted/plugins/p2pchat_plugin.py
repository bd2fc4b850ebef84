"""The twistd plugin: ``twistd -n p2pchat``.  Kept light; twistd imports it to list plugins."""

from twisted.application.service import ServiceMaker

p2pchat = ServiceMaker(
    "p2pchat",
    "p2pchat.service",
    "Serverless IRC-style LAN chat: peers found by multicast, talking over a TCP mesh.",
    "p2pchat",
)
