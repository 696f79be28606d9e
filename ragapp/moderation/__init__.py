"""Screening of questions and answers, and the record of every verdict."""
