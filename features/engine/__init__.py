"""Engines that run the features commands on more than one machine: `spark` (Apache Spark 4).

The local engine is the commands' own code; an engine here only reads, partitions and writes,
and runs that same code on each partition."""
