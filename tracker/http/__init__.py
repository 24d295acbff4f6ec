"""What every HTTP surface shares (the InfluxDB endpoints, the phone apps' endpoints and the JSON API,
the browser side): who the client is behind proxies, who is asking, reading and inflating bodies, and
the JSON and error answers. It depends on none of those surfaces."""
