"""The patentmatch service: Kafka topics, agents, routing, metrics, web and the command line."""
