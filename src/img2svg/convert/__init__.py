"""Stage 3: the API: submit each chunk's new jobs and poll its tasks, downloading each SVG as it is
done."""
