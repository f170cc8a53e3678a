"""Tests of pcpeft.viz and pcpeft.report: pictures, cloud files, the HTML report."""
